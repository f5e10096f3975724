/**
 * What the loader returns (src/hub/load.ts): a model's config, where it came from and its tensors, either all
 * in host memory (`LoadedModel`) or still to be streamed once (`ModelStream`), as converted (the decoder
 * linears NF4, the rest dense; src/quant/plan.ts).
 */
import type { Gemma2Config } from "../config/gemma2.ts";
import type { HostTensor } from "../quant/store.ts";
import type { ModelSource } from "./sources.ts";

export type { HostTensor };

export interface ModelStats {
  /** True when the tensors came from the converted-model cache. */
  fromCache: boolean;
  /** Bytes of the source weights that were (or, from cache, had been) read. */
  sourceBytes: number;
  /** Bytes of the converted tensors (the cache file's data). */
  storedBytes: number;
  tensors: number;
  quantized: number;
  /** Source tensors not used by Gemma2ForCausalLM (e.g. a tied lm_head). */
  skipped: string[];
}

export interface LoadedModel {
  config: Gemma2Config;
  /** Directory with config.json and the tokenizer files. */
  dir: string;
  /** Hub id, absolute directory, "tiny" or "gemma-2-2b-random". */
  source: string;
  /** Commit sha for Hub models. */
  revision?: string;
  tensors: Map<string, HostTensor>;
  /** gemma-2-2b-random: no tensors; the engine generates the weights itself. */
  randomWeights: boolean;
  /** The converted-model cache file, when one is used. */
  cachePath?: string;
  stats: ModelStats;
}

/** A model whose tensors have not been read yet: iterate `tensors()` once to stream them. */
export interface ModelStream extends Omit<LoadedModel, "tensors"> {
  /** Names in the order `tensors()` yields them. */
  names: string[];
  tensors(): AsyncGenerator<[string, HostTensor]>;
  /** Releases files/connections when `tensors()` is not (fully) iterated; harmless otherwise. */
  close(): void;
}

/** The fields of a loaded model that its source decides. */
export function modelBase(src: ModelSource): Omit<LoadedModel, "tensors" | "stats"> {
  return {
    config: src.config,
    dir: src.dir,
    source: src.source,
    revision: src.revision,
    randomWeights: src.kind === "random",
  };
}
