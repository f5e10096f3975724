// `maieutic chat` as a user runs it: piped (one message per line in, one reply per line out, /save), and in a
// pseudo-terminal (tests/chat/pty_driver.py, python3's pty module) with Japanese typed and edited with
// backspace, a reply stopped with Ctrl-C, and a second Ctrl-C that quits.
import { loadDialogues } from "../../src/data/load.ts";
import { cli, join, MAIN, makeTinyAdapter, withTempDir } from "./helpers.ts";

const DRIVER = new URL("./pty_driver.py", import.meta.url).pathname;

Deno.test("chat piped: one reply line per message line; /save writes a file the data loader reads", async () => {
  await withTempDir(async (dir) => {
    const adapter = await makeTinyAdapter(join(dir, "adapter"));
    const saved = join(dir, "talk.jsonl");
    const input = ["こんにちは", "勇気とは何ですか？", "/reset", "もう一度お願いします", `/save ${saved}`, ""]
      .join("\n");
    const args = [
      "chat",
      "--model",
      "tiny",
      "--adapter",
      adapter,
      "--max-new-tokens",
      "16",
      "--context",
      "256",
    ];
    const r = await cli([...args, "--seed", "5"], input);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.err}`);
    const lines = r.out.split("\n");
    // Three messages -> three reply lines (and the final newline); commands print nothing on stdout.
    if (lines.length !== 4 || lines[3] !== "" || lines.slice(0, 3).some((l) => l.trim() === "")) {
      throw new Error(`stdout: ${JSON.stringify(r.out)}\nstderr: ${r.err}`);
    }
    if (!r.err.includes("(new conversation)") || !r.err.includes(`to ${saved}`)) throw new Error(r.err);
    // After /reset the transcript holds the last exchange only.
    const d = await loadDialogues(saved);
    if (d.length !== 1 || d[0].turns.length !== 2 || d[0].turns[0].content !== "もう一度お願いします") {
      throw new Error(JSON.stringify(d));
    }
    if (d[0].turns[1].content.trim() !== lines[2].trim()) {
      throw new Error(
        `saved reply ${JSON.stringify(d[0].turns[1].content)} != printed ${JSON.stringify(lines[2])}`,
      );
    }
    // The same seed gives the same replies; another adapter-free run differs (the adapter is used).
    const again = await cli([...args, "--seed", "5"], input);
    if (again.out !== r.out) throw new Error("not reproducible with the same seed");
    const base = await cli(["chat", "--model", "tiny", "--max-new-tokens", "16", "--seed", "5"], input);
    if (base.code !== 0 || base.out === r.out) throw new Error("the adapter made no difference");
    // Bad flags exit 2 before any work.
    const bad = await cli([...args, "--temperature", "-1"], "");
    if (bad.code !== 2 || !bad.err.includes("--temperature")) throw new Error(`${bad.code} ${bad.err}`);
    const noDir = await cli(["chat", "--model", "tiny", "--adapter", join(dir, "none")], "");
    if (noDir.code !== 2 || !noDir.err.includes("no such directory")) throw new Error(noDir.err);
  });
});

Deno.test("chat in a terminal: Japanese typed and edited, Ctrl-C stops a reply, a second Ctrl-C quits", async () => {
  await withTempDir(async (dir) => {
    const adapter = await makeTinyAdapter(join(dir, "adapter"));
    const saved = join(dir, "talk.json");
    const cmd = [
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "chat",
      "--model",
      "tiny",
      "--adapter",
      adapter,
      "--temperature",
      "0",
      "--max-new-tokens",
      "900",
      "--context",
      "1000",
    ];
    const steps = [
      { expect: "> ", timeout: 120 },
      // Typed: こんにちは, one backspace (the terminal must erase the whole character は), Enter.
      { send: "こんにちは" },
      { send: "\x7f" },
      { send: "\r" },
      // Greedy decoding on the tiny model runs to the 900-token limit; stop it once it has started.
      { expect: "\r\n", timeout: 30 },
      // The reply has started (Ctrl-C before the line is read would make the terminal discard the line).
      { more: 6, timeout: 60 },
      { send: "\x03" },
      { expect: "(stopped)", timeout: 60 },
      { expect: "> ", timeout: 30 },
      { send: `/save ${saved}\r` },
      { expect: "(saved 1 exchange", timeout: 30 },
      { send: "\x03" },
      { expect: "(Ctrl-C again or /exit to quit)", timeout: 30 },
      { send: "\x03" },
      { expect: "bye", timeout: 30 },
    ];
    const p = await new Deno.Command("python3", {
      args: [DRIVER, JSON.stringify(cmd), JSON.stringify(steps)],
      env: { NO_COLOR: "1", XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(p.stdout);
    if (p.code !== 0) throw new Error(`driver: ${new TextDecoder().decode(p.stderr)}`);
    const r = JSON.parse(text) as { output: string; code: number | null; error: unknown };
    if (r.error !== null || r.code !== 130) {
      throw new Error(`step ${JSON.stringify(r.error)}, exit ${r.code}\n${r.output}`);
    }
    const d = await loadDialogues(saved);
    // The backspace erased the whole multi-byte character (IUTF8), not one byte of it.
    if (d[0].turns[0].content !== "こんにち") throw new Error(JSON.stringify(d[0].turns[0].content));
    // The stopped reply is kept, shorter than the limit.
    if (!d[0].turns[1].content.trim()) throw new Error("empty stopped reply");
  });
});
