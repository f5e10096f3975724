/**
 * `maieutic chat`: talk to a model (+ adapter) in the terminal, through its chat template, with the KV cache
 * kept across turns (src/chat/session.ts).
 *
 * Input is read in the terminal's cooked (canonical) mode, not a raw-mode line editor of our own: the
 * terminal edits the line, so an input method (IME) composes Japanese in place and commits whole characters,
 * and the terminal emulator knows how wide each character is. On Linux the line discipline erases a whole
 * UTF-8 character on backspace only with the IUTF8 flag; most terminal emulators set it, a bare pseudo-terminal
 * does not, so chat sets it (`stty iutf8`) when stdin is a terminal. What cooked mode lacks is history and
 * cursor keys, which a raw-mode editor would have to redo with East Asian widths and IME in mind.
 *
 * Ctrl-C during a reply stops it (what was said stays in the conversation); a second Ctrl-C, or one at the
 * prompt after a hint, exits (130). With stdin not a terminal (a pipe, a file) every line is one user message
 * and every reply is printed as one line (line breaks inside a reply become spaces; /save keeps them), so chat
 * can be scripted; notices go to stderr.
 */
import { CONFIG_HELP, configFromArgs, parse } from "./args.ts";
import { describeSampling, samplingHelp } from "./sampling_args.ts";
import { GENERATION_OPTIONS, generationFlags, openForGeneration } from "./generation_flags.ts";
import { ChatInputError, ChatSession } from "../chat/session.ts";
import { saveTranscript } from "../chat/transcript.ts";
import { Decoder } from "../model/decode.ts";

const DEFAULT_MAX_NEW = 256;
const DEFAULT_CONTEXT = 2048;

const USAGE =
  "maieutic chat [--model M] [--adapter DIR] [--system TEXT] [--temperature T --top-p P --top-k K " +
  "--max-new-tokens N --seed S] [--context N]";

const HELP = `${USAGE}

Multi-turn chat with the model through its chat template; tokens are printed as they decode and the KV
cache is kept across turns (when the context is full the oldest exchanges are dropped, with a notice).

  --adapter DIR            PEFT adapter directory (e.g. models/1gouki/model); without it the base model
  --system TEXT            a system text, folded into the first user turn (Gemma has no system role)
  --context N              tokens the conversation may hold (default ${DEFAULT_CONTEXT}, at most the model's
                           max_position_embeddings)
${samplingHelp(DEFAULT_MAX_NEW)}
${CONFIG_HELP}

In the chat:
  /reset                   start a new conversation
  /save FILE               write the conversation in the chat data format ({"messages": [...]}; FILE.jsonl:
                           one JSON line, else a JSON array): train on it (--data) or score it
  /exit                    quit (also Ctrl-D)
  Ctrl-C                   stop the current reply; a second Ctrl-C quits

With stdin not a terminal every input line is one message and every reply is one output line:
  printf 'こんにちは\\n勇気とは何ですか\\n' | maieutic chat --adapter models/1gouki/model`;

/** Lines of a byte stream, UTF-8 decoded across chunk boundaries (a trailing "\r" dropped). */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
    }
  }
  buf += dec.decode();
  if (buf !== "") yield buf.replace(/\r$/, "");
}

/** Sets IUTF8 on the terminal so backspace erases a whole multi-byte character (see the file comment). */
async function eraseWholeCharacters(): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    await new Deno.Command("stty", { args: ["iutf8"], stdin: "inherit", stdout: "null", stderr: "null" })
      .output();
  } catch { /* no stty: the terminal's own setting stays */ }
}

const enc = new TextEncoder();
const out = (s: string) => {
  const b = enc.encode(s);
  let off = 0;
  while (off < b.length) off += Deno.stdout.writeSync(b.subarray(off));
};

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { ...GENERATION_OPTIONS, system: { type: "string" } }, USAGE);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const flags = generationFlags(values, { maxNewTokens: DEFAULT_MAX_NEW, context: DEFAULT_CONTEXT });
  const { sampling, maxNewTokens } = flags;
  const cfg = configFromArgs(values);
  const system = typeof values.system === "string" ? values.system : undefined;
  const { model, maxLen } = await openForGeneration(cfg, flags);
  const decoder = new Decoder(model.session.engine, { rows: 1, maxLen, maxPrompt: maxLen });
  const chat = new ChatSession(decoder, model.tok, {
    system,
    sampling,
    maxNewTokens,
    seed: cfg.training.seed,
  });
  const tty = Deno.stdin.isTerminal();
  if (tty) await eraseWholeCharacters();
  console.error(
    `chat with ${model.description}: context ${maxLen} tokens, ${describeSampling(sampling)}, ` +
      `seed ${cfg.training.seed}. /reset, /save FILE, /exit; Ctrl-C stops a reply, twice quits.`,
  );

  // Ctrl-C: stop the reply in progress; a second one (or one at the prompt after the hint) quits.
  let generating: AbortController | null = null;
  let interrupts = 0;
  let quit: (code: number) => void = () => {};
  const quitting = new Promise<number>((r) => quit = r);
  const onSigint = () => {
    interrupts++;
    if (generating && interrupts === 1) {
      generating.abort();
      return;
    }
    if (interrupts === 1) {
      console.error("\n(Ctrl-C again or /exit to quit)");
      if (tty) out("> ");
      return;
    }
    quit(130);
  };
  Deno.addSignalListener("SIGINT", onSigint); // Windows too (Deno maps Ctrl-C to SIGINT there)

  const lines = readLines(Deno.stdin.readable);
  try {
    while (true) {
      if (tty) out("> ");
      const next = await Promise.race([lines.next(), quitting]);
      if (typeof next === "number") {
        console.error("bye");
        return next;
      }
      if (next.done) {
        if (tty) out("\n");
        return 0;
      }
      const line = next.value;
      const trimmed = line.trim();
      if (trimmed === "") continue;
      interrupts = 0;
      if (trimmed === "/exit" || trimmed === "/quit") return 0;
      if (trimmed === "/reset") {
        chat.reset();
        console.error("(new conversation)");
        continue;
      }
      if (trimmed === "/save" || trimmed.startsWith("/save ")) {
        const path = trimmed.slice("/save".length).trim();
        if (!path) {
          console.error("usage: /save FILE");
          continue;
        }
        try {
          const s = await saveTranscript(path, chat.record());
          const notes = [
            s.skipped ? `${s.skipped} exchange(s) with an empty reply left out` : "",
            s.removed ? `${s.removed} chat control token text(s) taken out` : "",
          ].filter(Boolean);
          console.error(
            `(saved ${s.record.messages.filter((m) => m.role === "user").length} exchange(s) to ${path}` +
              `${notes.length ? `; ${notes.join("; ")}` : ""})`,
          );
        } catch (e) {
          console.error(`(not saved: ${(e as Error).message})`);
        }
        continue;
      }
      if (trimmed.startsWith("/")) {
        console.error(`(unknown command ${trimmed.split(/\s/)[0]}: /reset, /save FILE, /exit)`);
        continue;
      }
      generating = new AbortController();
      let started = false;
      try {
        const r = await chat.reply(line, {
          signal: generating.signal,
          onText: (piece) => {
            // Piped: one reply per line; a reply's leading blanks are not printed.
            let p = tty ? piece : piece.replace(/\r?\n/g, " ");
            if (!started) p = p.trimStart();
            if (p) started = true;
            out(p);
          },
        });
        out("\n");
        if (r.dropped) {
          console.error(
            `(the context was full: the oldest ${r.dropped} exchange(s) were dropped from what the model sees)`,
          );
        }
        if (r.finish === "interrupted") console.error("(stopped)");
        else if (r.finish === "length") console.error(`(cut at --max-new-tokens ${maxNewTokens})`);
      } catch (e) {
        if (!(e instanceof ChatInputError)) throw e;
        if (!tty) out("\n"); // one output line per input line, even for a message that was not sent
        console.error(`(not sent: ${e.message})`);
      } finally {
        generating = null;
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    decoder.destroy();
  }
}
