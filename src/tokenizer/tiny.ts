/**
 * The tokenizer of the built-in tiny model (`--model tiny`): a small Gemma-like BPE with byte fallback, built
 * in code (deterministic, no network) and written out as the same four files a Gemma-2 Hub repo carries, so the
 * tiny model goes through exactly the same loader (src/tokenizer/tokenizer.ts) as the real one.
 *
 * Layout, like Gemma's tokenizer.json: normalizer replaces " " by "▁" (no dummy prefix), no pre-tokenizer, BPE
 * with byte_fallback (a character outside the vocabulary becomes its UTF-8 bytes <0xNN>), decoder
 * Replace("▁"->" ") + ByteFallback + Fuse. Ids: 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, 4 <start_of_turn>,
 * 5 <end_of_turn>, 6..261 <0x00>..<0xFF>, then single characters (ASCII, hiragana, katakana, Japanese
 * punctuation, common kanji), then the results of a few merges, exactly TINY_VOCAB_SIZE in all.
 */

import { type ChatTokenizer, createChatTokenizer } from "./tokenizer.ts";

export const TINY_VOCAB_SIZE = 1024;

/** Gemma-2's chat template, as in google/gemma-2-2b-it's tokenizer_config.json. */
export const GEMMA2_CHAT_TEMPLATE = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}" +
  "{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}" +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}" +
  "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

const SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"] as const;

function range(from: number, to: number): string[] {
  const out: string[] = [];
  for (let c = from; c <= to; c++) out.push(String.fromCodePoint(c));
  return out;
}

/** Full-width and CJK punctuation, full-width digits and symbols commonly found in Japanese text. */
const JA_PUNCT = "　、。〃々〆〇「」『』【】〈〉《》〔〕・…‥〜～！？（）：；，．＝＋－％＆＊＠＃／＿“”‘’" +
  "０１２３４５６７８９";

/**
 * Common kanji, a fixed list: a few for defining and questioning (定義, 矛盾, 例, ...), then the most frequent
 * in Socratic tutoring dialogue (counted once over the bundled 1号機 dialogues and frozen here, so the
 * vocabulary never changes with the data), then general high-frequency kanji. Only as many as fit are used.
 */
const KANJI =
  "考思問答例定義意味理由矛盾違具体的説明言葉確認知識正誤人自何見分感気間一事変友大方時同本当仕出子" +
  "今生幸信手中話合目家比誰持直使金関失学先決場作守必私要係好聞親身上切力多安対相立選部判嫌実成日最" +
  "美会怖描絵別敗数果業行勉強得情断楽残利外書校物示表起食全厳嘘小少張早科覚頑不価初前境毎法点環買迷" +
  "二動困報心指活結良長題入公化基平族準落込門頼便優勇悪朝減笑続調限両伝効司品寂常曲用番経習逃通配重" +
  "面頭顔験以反名向夜差後慢我択注納術評負近返値傷兄則周地律従恥服無現社約績者読謝足転道仲任像功努回" +
  "売奪客専形役悩技文料次止然練職色訳逆遊際三他企勝危取受国夫工度惑新昔来深炊状疲着絶英語車輩黙件健" +
  "共内割十姿害広康弱応想捨有条歩況浮節終罰育苦談賢質進隠難電駄高髪下仏代助区単占原因奥始字容寝年弟" +
  "影怒戦所損支整旅根段満漬疑発票程給緒翻視設試週避量音七予互似低個元六冷含商壊尊屋式引待忘恩批挑挙" +
  "授接昇景暑暗月望期束格案母測特界病真瞬縛肢背解許証誠護費資速遅遣集響類館世介伸保借傘君善福達政議" +
  "民連五東党市四員九開米円京氏田八主首性制治務野協都和統機総加山領県改記院女北午権第産百派教済府交" +
  "川査委告軍千画海参組策在団側求水半昨論計死官増投打男各島革村提運西勢台演歳住争能再位置流口過局放" +
  "税検藤町沢裁建球営空土与急送援供可構木付施防補研収井南石消神規展態導鮮備宅副算幹独警宮究席輸訪万" +
  "乗店述線率農州武声念象銀域労衛映額監追審働欧担退賞訴辺造被株医復去閣渡移衆写課末若脳極種岡命蔵松" +
  "非撃佐核観察横融型白製申様財港呼渉阪帰針推";

/** Merges (rank order). Every part and every result is a vocabulary token; results are added to the vocab. */
const MERGES: [string, string][] = [
  ["で", "す"],
  ["ま", "す"],
  ["です", "か"],
  ["ます", "か"],
  ["ま", "せ"],
  ["ませ", "ん"],
  ["ょ", "う"],
  ["し", "ょう"],
  ["で", "しょう"],
  ["こ", "と"],
  ["と", "は"],
  ["な", "い"],
  ["あ", "り"],
  ["あり", "ます"],
  ["ど", "う"],
  ["な", "ぜ"],
  ["で", "は"],
  ["て", "い"],
  ["▁", "t"],
  ["h", "e"],
  ["▁t", "he"],
  ["o", "u"],
  ["▁", "y"],
  ["▁y", "ou"],
  ["i", "n"],
  ["e", "r"],
  ["a", "t"],
  ["o", "n"],
  ["e", "n"],
  ["i", "s"],
  ["▁", "is"],
  ["▁", "a"],
  ["▁", "w"],
  ["h", "a"],
  ["▁w", "ha"],
  ["▁wha", "t"],
];

interface TinyVocab {
  vocab: Record<string, number>;
  merges: [string, string][];
}

function buildVocab(): TinyVocab {
  const tokens: string[] = [...SPECIALS];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const chars: string[] = [
    "▁",
    "\n",
    ...range(0x21, 0x7e), // printable ASCII (space is "▁" after normalization)
    ...range(0x3041, 0x3096), // hiragana
    ...range(0x30a1, 0x30fa), // katakana
    "ー",
    ...Array.from(JA_PUNCT),
  ];
  const seen = new Set<string>(tokens);
  const push = (t: string) => {
    if (!seen.has(t)) {
      seen.add(t);
      tokens.push(t);
    }
  };
  for (const c of chars) push(c);
  const merged = MERGES.map(([a, b]) => a + b);
  const kanjiRoom = TINY_VOCAB_SIZE - tokens.length - new Set(merged).size;
  const kanji = [...new Set(Array.from(KANJI))].filter((c) => /\p{Script=Han}/u.test(c) && !seen.has(c));
  if (kanji.length < kanjiRoom) throw new Error(`tiny tokenizer: ${kanji.length} kanji < ${kanjiRoom} slots`);
  for (const c of kanji.slice(0, kanjiRoom)) push(c);
  for (const [a, b] of MERGES) {
    if (!seen.has(a) || !seen.has(b)) throw new Error(`tiny tokenizer: merge part missing: ${a} ${b}`);
    push(a + b);
  }
  if (tokens.length !== TINY_VOCAB_SIZE) {
    throw new Error(`tiny tokenizer: ${tokens.length} tokens, expected ${TINY_VOCAB_SIZE}`);
  }
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => vocab[t] = i);
  return { vocab, merges: MERGES };
}

/**
 * The files of the tiny model's tokenizer, keyed by file name: tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json. Pure and deterministic (same bytes on every call).
 */
export function tinyTokenizerFiles(): Record<string, string> {
  const { vocab, merges } = buildVocab();
  const addedTokens = SPECIALS.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: "Replace", pattern: { String: " " }, content: "▁" },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<bos>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<bos>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<bos>": { id: "<bos>", ids: [2], tokens: ["<bos>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const t of addedTokens) {
    const { id: _id, ...rest } = t;
    addedTokensDecoder[String(t.id)] = rest;
  }
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ["<start_of_turn>", "<end_of_turn>"],
    bos_token: "<bos>",
    chat_template: GEMMA2_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: "<eos>",
    model_max_length: 8192,
    pad_token: "<pad>",
    spaces_between_special_tokens: false,
    tokenizer_class: "GemmaTokenizer",
    unk_token: "<unk>",
    use_default_system_prompt: false,
  };
  const specialTokensMap = {
    additional_special_tokens: ["<start_of_turn>", "<end_of_turn>"],
    bos_token: { content: "<bos>", lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { content: "<eos>", lstrip: false, normalized: false, rstrip: false, single_word: false },
    pad_token: { content: "<pad>", lstrip: false, normalized: false, rstrip: false, single_word: false },
    unk_token: { content: "<unk>", lstrip: false, normalized: false, rstrip: false, single_word: false },
  };
  const generationConfig = {
    bos_token_id: 2,
    eos_token_id: [1, vocab["<end_of_turn>"]],
    pad_token_id: 0,
  };
  const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
  return {
    "tokenizer.json": json(tokenizer),
    "tokenizer_config.json": json(tokenizerConfig),
    "special_tokens_map.json": json(specialTokensMap),
    "generation_config.json": json(generationConfig),
  };
}

/** The tiny tokenizer as a ChatTokenizer, built in memory (same result as loadTokenizer on the written files). */
export function tinyChatTokenizer(): ChatTokenizer {
  const files = tinyTokenizerFiles();
  return createChatTokenizer({
    tokenizer: JSON.parse(files["tokenizer.json"]),
    config: JSON.parse(files["tokenizer_config.json"]),
    generationConfig: JSON.parse(files["generation_config.json"]),
    source: "tiny",
  });
}
