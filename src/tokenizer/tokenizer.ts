/**
 * The model's tokenizer and chat template (docs/ARCHITECTURE.md#data): tokenizer.json through npm:@huggingface/tokenizers,
 * chat_template and special tokens from tokenizer_config.json rendered with npm:@huggingface/jinja, stop ids
 * from generation_config.json. Used by src/data (labels), the trainer and eval (generation).
 */
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { UsageError } from "../util/errors.ts";

export type ChatRole = "user" | "model";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatTokenizer {
  /** Token ids of `text`; no special tokens are added (a literal "<bos>" in the text is the <bos> token). */
  encode(text: string): number[];
  /** Text of `ids`, special tokens included, no clean-up of spaces (the inverse of encode). */
  decode(ids: readonly number[] | Int32Array): string;
  /**
   * The conversation rendered by the model's own chat template ("model" turns are passed to the template as
   * role "assistant", which every Hub template understands; Gemma's maps it back to "model").
   * `addGenerationPrompt` appends the header of the next model turn.
   */
  renderChat(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly endOfTurnId: number;
  /** Generation stops on any of these (generation_config.json eos_token_id, plus <eos> and <end_of_turn>). */
  readonly stopIds: number[];
  /** One more than the largest token id. */
  readonly vocabSize: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
  readonly endOfTurnToken: string;
  /** tokenizer_config.json add_bos_token (Gemma: true; its template writes the <bos> itself). */
  readonly addBosToken: boolean;
  /** The text of every special added token (text containing one of these would encode to a control token). */
  readonly specialTokens: readonly string[];
  readonly chatTemplate: string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

/** The parsed contents of a tokenizer directory (the tiny model builds these in memory). */
export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizer: Record<string, unknown>;
  /** tokenizer_config.json */
  config: Record<string, unknown>;
  /** generation_config.json, when present. */
  generationConfig?: Record<string, unknown>;
  /** chat_template.jinja, when present (newer transformers save the template beside the config). */
  chatTemplateFile?: string;
  /** For messages: where the files came from. */
  source?: string;
}

const END_OF_TURN = "<end_of_turn>";

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function parseJson(text: string, path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: not valid JSON (${(e as Error).message}); re-download the model files`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    throw new UsageError(`${path}: expected a JSON object`);
  }
  return v as Record<string, unknown>;
}

/**
 * Loads the tokenizer of a model directory laid out like a Hub repo: tokenizer.json and tokenizer_config.json
 * (required), generation_config.json and chat_template.jinja (optional).
 */
export async function loadTokenizer(dir: string): Promise<ChatTokenizer> {
  const read = async (name: string, required: boolean) => {
    const path = join(dir, name);
    const text = await readOptional(path);
    if (text === undefined && required) {
      throw new UsageError(
        `${path} not found: a model directory needs tokenizer.json and tokenizer_config.json (as on the Hub)`,
      );
    }
    return text === undefined ? undefined : { text, path };
  };
  const tok = (await read("tokenizer.json", true))!;
  const cfg = (await read("tokenizer_config.json", true))!;
  const gen = await read("generation_config.json", false);
  const tpl = await read("chat_template.jinja", false);
  return createChatTokenizer({
    tokenizer: parseJson(tok.text, tok.path),
    config: parseJson(cfg.text, cfg.path),
    generationConfig: gen ? parseJson(gen.text, gen.path) : undefined,
    chatTemplateFile: tpl?.text,
    source: dir,
  });
}

/** A token named in tokenizer_config.json: a string, or an AddedToken object {content, ...}. */
function tokenName(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return undefined;
}

function chatTemplateOf(files: TokenizerFiles, where: string): string {
  const t = files.config.chat_template;
  if (typeof t === "string" && t.length > 0) return t;
  if (Array.isArray(t)) {
    const named = t as { name?: string; template?: string }[];
    const pick = named.find((x) => x.name === "default") ?? named[0];
    if (pick && typeof pick.template === "string") return pick.template;
  }
  if (files.chatTemplateFile) return files.chatTemplateFile;
  throw new UsageError(
    `${where}: tokenizer_config.json has no chat_template (and there is no chat_template.jinja); ` +
      `maieutic trains instruction-tuned chat models such as google/gemma-2-2b-jpn-it`,
  );
}

/** Builds a ChatTokenizer from already parsed files. */
export function createChatTokenizer(files: TokenizerFiles): ChatTokenizer {
  const where = files.source ?? "tokenizer";
  let hf: Tokenizer;
  try {
    hf = new Tokenizer(files.tokenizer, files.config);
  } catch (e) {
    throw new UsageError(`${where}: tokenizer.json could not be loaded (${(e as Error).message})`);
  }
  const chatTemplate = chatTemplateOf(files, where);
  let template: Template;
  try {
    template = new Template(chatTemplate);
  } catch (e) {
    throw new UsageError(`${where}: chat_template does not parse (${(e as Error).message})`);
  }

  const idOf = (name: string | undefined, what: string, fallback?: string): [string, number] => {
    for (const n of [name, fallback]) {
      if (n === undefined) continue;
      const id = hf.token_to_id(n);
      if (id !== undefined) return [n, id];
    }
    throw new UsageError(
      `${where}: the ${what} token ${name ?? fallback} is not in tokenizer.json's vocabulary`,
    );
  };
  const [bosToken, bosId] = idOf(tokenName(files.config.bos_token), "bos", "<bos>");
  const [eosToken, eosId] = idOf(tokenName(files.config.eos_token), "eos", "<eos>");
  const [padToken, padId] = idOf(tokenName(files.config.pad_token), "pad", eosToken);
  const [endOfTurnToken, endOfTurnId] = idOf(END_OF_TURN, "end-of-turn");
  const unkToken = tokenName(files.config.unk_token) ?? "<unk>";

  const genEos = files.generationConfig?.eos_token_id;
  const stop = new Set<number>();
  for (const v of Array.isArray(genEos) ? genEos : genEos === undefined ? [] : [genEos]) {
    if (typeof v === "number" && Number.isInteger(v)) stop.add(v);
  }
  stop.add(eosId);
  stop.add(endOfTurnId);

  let maxId = -1;
  for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
  const specialTokens = [...hf.get_added_tokens_decoder().values()].filter((t) => t.special).map((t) =>
    t.content
  );

  return {
    encode(text: string): number[] {
      if (text.length === 0) return [];
      return hf.encode(text, { add_special_tokens: false }).ids;
    },
    decode(ids: readonly number[] | Int32Array): string {
      if (ids.length === 0) return "";
      return hf.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    },
    renderChat(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
      try {
        return template.render({
          messages: messages.map((m) => ({
            role: m.role === "model" ? "assistant" : m.role,
            content: m.content,
          })),
          add_generation_prompt: addGenerationPrompt,
          bos_token: bosToken,
          eos_token: eosToken,
          pad_token: padToken,
          unk_token: unkToken,
        });
      } catch (e) {
        throw new Error(`${where}: the chat template failed: ${(e as Error).message}`);
      }
    },
    bosId,
    eosId,
    padId,
    endOfTurnId,
    stopIds: [...stop],
    vocabSize: maxId + 1,
    bosToken,
    eosToken,
    padToken,
    endOfTurnToken,
    addBosToken: files.config.add_bos_token !== false,
    specialTokens,
    chatTemplate,
    tokenToId: (t) => hf.token_to_id(t),
    idToToken: (id) => hf.id_to_token(id),
  };
}
