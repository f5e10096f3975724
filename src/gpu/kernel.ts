/**
 * Compute pipelines, cached by kernel file + entry point + override constants + type substitutions.
 *
 * getKernel is synchronous so that wrappers can pick a variant by shape while recording. Creation runs inside
 * a validation error scope; its outcome (with the WGSL compiler's messages mapped to `kernels/<file>:line`)
 * is collected, and `checkKernels(gpu)` (awaited by every readback) throws the first failure. So a broken
 * kernel surfaces as a WgslError naming the file and line instead of silent zeros.
 *
 * Binding convention for every kernel in kernels/*.wgsl: `@group(0) @binding(0)` is the uniform parameter
 * block `p: Params` (when the kernel has one), then storage buffers at bindings 1, 2, ... in the order the
 * wrapper passes them. `struct Params` is not in the .wgsl file: the wrapper declares its fields once
 * (defineKernel's `params`), the host prepends the generated struct (one line, which error messages subtract)
 * and Recorder.dispatch checks the named values against it (src/gpu/params.ts). 1-D grids larger than
 * maxComputeWorkgroupsPerDimension are folded into y (Recorder.dispatch): such kernels compute their linear
 * workgroup index as `wg.x + wg.y * nwg.x` and guard against overshoot.
 *
 * WGSL has no includes: a kernel (or a library) that says `// #include <lib>` gets the library appended once
 * (libraries it includes too, each once). A library with two variants appends one of two files, with the same
 * names: the subgroup variant when the device has `subgroups` (of at least the library's width), else the
 * fallback. `reduce`: kernels/lib/reduce_subgroup.wgsl or reduce_workgroup.wgsl (workgroup sums and maxima);
 * `row8`: kernels/lib/row8_subgroup.wgsl (needs subgroups ≥ 8 lanes) or row8_load.wgsl (an operand row shared
 * by a register-blocked workgroup). MAIEUTIC_SUBGROUPS=0 forces every fallback (tests run both). A library
 * can also be one text for every device: `nf4_dequant` (bitsandbytes' absmax and the 4-bit codes, every NF4
 * kernel), `nf4_regs` (the register-blocked kernels' NF4 dequantization), `pcg` (the counter-based hash),
 * `dropout` (the LoRA dropout mask), `softcap` (Gemma-2's score softcapping), `attention_scores`,
 * `attention_kv_tile`, `attention_query_rows` (what the tiled attention kernels share).
 */
import { type Gpu, waitGpu } from "./device.ts";
import { kernelChoice, type Reductions } from "./variants.ts";
import { type ParamSchema, type ParamsOf, paramsStruct } from "./params.ts";
import reduceSubgroupSource from "../../kernels/lib/reduce_subgroup.wgsl" with { type: "text" };
import reduceWorkgroupSource from "../../kernels/lib/reduce_workgroup.wgsl" with { type: "text" };
import row8SubgroupSource from "../../kernels/lib/row8_subgroup.wgsl" with { type: "text" };
import row8LoadSource from "../../kernels/lib/row8_load.wgsl" with { type: "text" };
import nf4RegsSource from "../../kernels/lib/nf4_regs.wgsl" with { type: "text" };
import attentionScoresSource from "../../kernels/lib/attention_scores.wgsl" with { type: "text" };
import attentionKvTileSource from "../../kernels/lib/attention_kv_tile.wgsl" with { type: "text" };
import attentionQueryRowsSource from "../../kernels/lib/attention_query_rows.wgsl" with { type: "text" };
import nf4DequantSource from "../../kernels/lib/nf4_dequant.wgsl" with { type: "text" };
import pcgSource from "../../kernels/lib/pcg.wgsl" with { type: "text" };
import dropoutSource from "../../kernels/lib/dropout.wgsl" with { type: "text" };
import softcapSource from "../../kernels/lib/softcap.wgsl" with { type: "text" };

export interface KernelSpec<S extends ParamSchema = ParamSchema> {
  /** File name under kernels/, used in errors and profiles, e.g. "matmul.wgsl". */
  file: string;
  code: string;
  /**
   * The uniform `Params` (binding 0) by field, in order: the WGSL struct is generated from it (src/gpu/params.ts)
   * and the values a dispatch passes are checked against it. Absent when the kernel has no uniform block.
   */
  params?: S;
  entry?: string;
  constants?: Record<string, number>;
  /** Whole-word text substitutions applied before compiling, e.g. { A_T: "f16" }. */
  types?: Record<string, string>;
}

export type { Reductions };

type Library =
  | {
    /** Subgroup width the subgroup variant needs (the adapter's smallest must reach it). */
    minSubgroupSize: number;
    variants: Record<Reductions, { file: string; code: string }>;
  }
  /** One text for every device: WGSL shared by several kernels. */
  | { shared: { file: string; code: string } };

const LIBRARIES: Record<string, Library> = {
  reduce: {
    minSubgroupSize: 1,
    variants: {
      subgroup: { file: "lib/reduce_subgroup.wgsl", code: reduceSubgroupSource },
      workgroup: { file: "lib/reduce_workgroup.wgsl", code: reduceWorkgroupSource },
    },
  },
  row8: {
    minSubgroupSize: 8,
    variants: {
      subgroup: { file: "lib/row8_subgroup.wgsl", code: row8SubgroupSource },
      workgroup: { file: "lib/row8_load.wgsl", code: row8LoadSource },
    },
  },
  nf4_dequant: { shared: { file: "lib/nf4_dequant.wgsl", code: nf4DequantSource } },
  nf4_regs: { shared: { file: "lib/nf4_regs.wgsl", code: nf4RegsSource } },
  pcg: { shared: { file: "lib/pcg.wgsl", code: pcgSource } },
  dropout: { shared: { file: "lib/dropout.wgsl", code: dropoutSource } },
  softcap: { shared: { file: "lib/softcap.wgsl", code: softcapSource } },
  attention_scores: { shared: { file: "lib/attention_scores.wgsl", code: attentionScoresSource } },
  attention_kv_tile: { shared: { file: "lib/attention_kv_tile.wgsl", code: attentionKvTileSource } },
  attention_query_rows: { shared: { file: "lib/attention_query_rows.wgsl", code: attentionQueryRowsSource } },
};

/** The variant of each library on this device (reductionsFor, and the library's subgroup width). */
export function libraryVariants(gpu: Gpu): Record<string, Reductions> {
  const r = reductionsFor(gpu);
  const min = gpu.subgroupSizes?.min ?? 0;
  // getKernel asks per dispatch: one object per (variant, width), not one per call.
  const key = `${r}/${min}`;
  const hit = variantsMemo.get(key);
  if (hit) return hit;
  const out: Record<string, Reductions> = {};
  for (const [name, lib] of Object.entries(LIBRARIES)) {
    if ("shared" in lib) continue;
    out[name] = r === "subgroup" && (lib.minSubgroupSize <= 1 || min >= lib.minSubgroupSize)
      ? "subgroup"
      : "workgroup";
  }
  variantsMemo.set(key, out);
  return out;
}

const variantsMemo = new Map<string, Readonly<Record<string, Reductions>>>();

const INCLUDE = /^\/\/ #include (\w+)\s*$/gm;

/** The reductions variant of this device, resolved when it opened (src/gpu/variants.ts). */
export function reductionsFor(gpu: Gpu): Reductions {
  return kernelChoice(gpu).reductions;
}

export interface Kernel<S extends ParamSchema = ParamSchema> {
  readonly name: string;
  /** `kernels/<file>`, for errors. */
  readonly where: string;
  readonly pipeline: GPUComputePipeline;
  /** The uniform block's fields, or null when the kernel has none. */
  readonly params: S | null;
}

/** The Params values of a kernel declared with defineKernel: `KernelParams<typeof ROPE>`. */
export type KernelParams<K> = K extends KernelSpec<infer S> ? ParamsOf<S> : never;

/** The pipeline type getKernel returns for a kernel declared with defineKernel. */
export type KernelOf<K> = K extends KernelSpec<infer S> ? Kernel<S> : never;

/**
 * A kernel's file, source and Params declared once (the wrapper's module constant); wrappers spread it into
 * getKernel with their constants and types: `getKernel(gpu, { ...ROPE, constants })`.
 */
export function defineKernel<S extends ParamSchema>(spec: KernelSpec<S>): KernelSpec<S> {
  if (/^\s*struct\s+Params\b/m.test(spec.code)) {
    throw new WgslError(
      `kernels/${spec.file} declares struct Params: declare its fields in TypeScript (params)`,
    );
  }
  return spec;
}

export class WgslError extends Error {
  override name = "WgslError";
}

interface DeviceKernels {
  cache: Map<string, Kernel>;
  pending: Promise<WgslError | null>[];
}
const perDevice = new WeakMap<GPUDevice, DeviceKernels>();

function state(gpu: Gpu): DeviceKernels {
  let s = perDevice.get(gpu.device);
  if (!s) perDevice.set(gpu.device, s = { cache: new Map(), pending: [] });
  return s;
}

/** A library variant for every library, or per library name. */
export type LibraryChoice = Reductions | Record<string, Reductions>;

const variantOf = (choice: LibraryChoice, name: string): Reductions =>
  typeof choice === "string" ? choice : choice[name] ?? "workgroup";

export function kernelKey(spec: KernelSpec, libraries?: LibraryChoice): string {
  const fmt = (o: Record<string, unknown> | undefined) =>
    Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(",");
  const names = includedLibraries(spec.code).filter((n) => LIBRARIES[n] && !("shared" in LIBRARIES[n]));
  const lib = libraries && names.length
    ? `[${names.map((n) => `${n}=${variantOf(libraries, n)}`).join(",")}]`
    : "";
  return `${spec.file}#${spec.entry ?? "main"}{${fmt(spec.constants)}}<${fmt(spec.types)}>${lib}`;
}

const includes = new Map<string, string[]>(); // kernel source -> its `// #include` names (getKernel runs per dispatch)

/**
 * The libraries a kernel includes, directly or through the libraries it includes (each once, in the order
 * first met; WGSL declarations at module scope may come in any order). An unknown name is kept so that
 * expandSource can name it in its error.
 */
function includedLibraries(code: string): string[] {
  let names = includes.get(code);
  if (names === undefined) {
    const out: string[] = [];
    const visit = (text: string) => {
      for (const [, name] of text.matchAll(INCLUDE)) {
        if (out.includes(name)) continue;
        out.push(name);
        const lib = LIBRARIES[name];
        if (!lib) continue;
        if ("shared" in lib) visit(lib.shared.code);
        else for (const v of Object.values(lib.variants)) visit(v.code);
      }
    };
    visit(code);
    includes.set(code, names = out);
  }
  return names;
}

/** A library appended to a kernel: its file and the line of the expanded source where it starts (1-based). */
export interface AppendedLibrary {
  file: string;
  firstLine: number;
}

/**
 * Applies the type substitutions, appends the `// #include` libraries (after the kernel, so the kernel's line
 * numbers stay), and prepends the generated `struct Params` (one line) and `enable f16;` when the code uses f16:
 * `prologueLines` counts the prepended lines, which error messages subtract.
 */
export function expandSource(
  spec: KernelSpec,
  f16Available: boolean,
  choice: LibraryChoice = "workgroup",
): { code: string; prologueLines: number; libraries: AppendedLibrary[] } {
  let code = spec.code;
  const libraries: AppendedLibrary[] = [];
  for (const name of includedLibraries(spec.code)) {
    const entry = LIBRARIES[name];
    const lib = entry && ("shared" in entry ? entry.shared : entry.variants[variantOf(choice, name)]);
    if (!lib) throw new WgslError(`kernels/${spec.file}: unknown library "// #include ${name}"`);
    code = code.replace(/\n*$/, "\n");
    libraries.push({ file: lib.file, firstLine: code.split("\n").length });
    code += lib.code;
  }
  for (const [k, v] of Object.entries(spec.types ?? {})) {
    code = code.replace(new RegExp(`\\b${k}\\b`, "g"), v);
  }
  let prologueLines = 0;
  if (spec.params) {
    code = paramsStruct(spec.params) + "\n" + code;
    prologueLines++;
  }
  // Comments mention f16 freely (the f32 variants explain the rounding they skip): only code counts.
  if (/\bf16\b/.test(code.replace(/\/\/[^\n]*/g, "")) && !/^\s*enable\s+f16\s*;/m.test(code)) {
    if (!f16Available) throw new WgslError(`kernels/${spec.file} uses f16 but the adapter lacks shader-f16`);
    return { code: "enable f16;\n" + code, prologueLines: prologueLines + 1, libraries };
  }
  return { code, prologueLines, libraries };
}

/** `kernels/<file>:<line>` for a line of the expanded source (the kernel's own or an appended library's). */
function sourceLine(spec: KernelSpec, libraries: AppendedLibrary[], line: number): string {
  for (let i = libraries.length - 1; i >= 0; i--) {
    if (line >= libraries[i].firstLine) {
      return `kernels/${libraries[i].file}:${line - libraries[i].firstLine + 1}`;
    }
  }
  return `kernels/${spec.file}:${line}`;
}

/** Builds (or returns the cached) pipeline for a kernel. */
export function getKernel<S extends ParamSchema>(gpu: Gpu, spec: KernelSpec<S>): Kernel<S> {
  const s = state(gpu);
  const choice = includedLibraries(spec.code).length ? libraryVariants(gpu) : undefined;
  const key = kernelKey(spec, choice);
  const hit = s.cache.get(key);
  if (hit) return hit as Kernel<S>;
  const { device } = gpu;
  const { code, prologueLines, libraries } = expandSource(spec, gpu.f16, choice);
  const usesParams = /@group\(0\)\s*@binding\(0\)\s*var<uniform>/.test(code);
  if (usesParams !== Boolean(spec.params)) {
    throw new WgslError(
      usesParams
        ? `kernels/${spec.file} has a uniform Params block but its spec declares no params`
        : `kernels/${spec.file}: params declared but the kernel has no uniform at @group(0) @binding(0)`,
    );
  }
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: spec.file, code });
  const pipeline = device.createComputePipeline({
    label: key,
    layout: "auto",
    compute: { module, entryPoint: spec.entry ?? "main", constants: spec.constants },
  });
  const scope = device.popErrorScope();
  s.pending.push(
    Promise.all([scope, module.getCompilationInfo()]).then(([err, info]) => {
      const errors = info.messages.filter((m) => m.type === "error");
      if (errors.length) {
        return new WgslError(
          errors.map((m) =>
            `${sourceLine(spec, libraries, m.lineNum - prologueLines)}:${m.linePos}: ${m.message}`
          )
            .join("\n"),
        );
      }
      return err ? new WgslError(`kernels/${spec.file} (${key}): ${err.message}`) : null;
    }),
  );
  const kernel: Kernel<S> = {
    name: key,
    where: `kernels/${spec.file}`,
    pipeline,
    params: spec.params ?? null,
  };
  s.cache.set(key, kernel);
  return kernel;
}

export class GpuValidationError extends Error {
  override name = "GpuValidationError";
}

/**
 * Throws the first pipeline-creation failure so far, else the first uncaptured WebGPU error (a bad bind
 * group, a dispatch with an invalid pipeline, ...), so such bugs fail loudly instead of reading zeros.
 */
export async function checkKernels(gpu: Gpu): Promise<void> {
  const s = state(gpu);
  const pending = s.pending;
  s.pending = [];
  // Shader compilation happens here on some drivers: the watchdog names the kernels if it never ends.
  const done = await waitGpu(gpu, Promise.all(pending), "compiling kernels");
  const errs = done.filter((e): e is WgslError => e !== null);
  if (errs.length) throw errs[0];
  if (gpu.errors.length) {
    const all = gpu.errors.splice(0);
    throw new GpuValidationError(`WebGPU reported ${all.length} error(s); first: ${all[0]}`);
  }
}
