/**
 * Compute pipelines, cached by kernel file + entry point + override constants + type substitutions.
 *
 * getKernel is synchronous so that wrappers can pick a variant by shape while recording. Creation runs inside
 * a validation error scope; its outcome (with the WGSL compiler's messages mapped to `kernels/<file>:line`)
 * is collected, and `checkKernels(gpu)` (awaited by every readback) throws the first failure. So a broken
 * kernel surfaces as a WgslError naming the file and line instead of silent zeros.
 *
 * Binding convention for every kernel in kernels/*.wgsl: `@group(0) @binding(0)` is the uniform parameter
 * block (when the kernel has one), then storage buffers at bindings 1, 2, ... in the order the wrapper passes
 * them. 1-D grids larger than maxComputeWorkgroupsPerDimension are folded into y (Recorder.dispatch): such
 * kernels compute their linear workgroup index as `wg.x + wg.y * nwg.x` and guard against overshoot.
 */
import type { Gpu } from "./device.ts";

export interface KernelSpec {
  /** File name under kernels/, used in errors and profiles, e.g. "matmul.wgsl". */
  file: string;
  code: string;
  entry?: string;
  constants?: Record<string, number>;
  /** Whole-word text substitutions applied before compiling, e.g. { A_T: "f16" }. */
  types?: Record<string, string>;
}

export interface Kernel {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly hasParams: boolean;
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

export function kernelKey(spec: KernelSpec): string {
  const fmt = (o: Record<string, unknown> | undefined) =>
    Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(",");
  return `${spec.file}#${spec.entry ?? "main"}{${fmt(spec.constants)}}<${fmt(spec.types)}>`;
}

/** Applies the type substitutions and adds `enable f16;` when the code uses f16. */
export function expandSource(
  spec: KernelSpec,
  f16Available: boolean,
): { code: string; prologueLines: number } {
  let code = spec.code;
  for (const [k, v] of Object.entries(spec.types ?? {})) {
    code = code.replace(new RegExp(`\\b${k}\\b`, "g"), v);
  }
  if (/\bf16\b/.test(code) && !/^\s*enable\s+f16\s*;/m.test(code)) {
    if (!f16Available) throw new WgslError(`kernels/${spec.file} uses f16 but the adapter lacks shader-f16`);
    return { code: "enable f16;\n" + code, prologueLines: 1 };
  }
  return { code, prologueLines: 0 };
}

/** Builds (or returns the cached) pipeline for a kernel. */
export function getKernel(gpu: Gpu, spec: KernelSpec): Kernel {
  const s = state(gpu);
  const key = kernelKey(spec);
  const hit = s.cache.get(key);
  if (hit) return hit;
  const { device } = gpu;
  const { code, prologueLines } = expandSource(spec, gpu.f16);
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
          errors.map((m) => `kernels/${spec.file}:${m.lineNum - prologueLines}:${m.linePos}: ${m.message}`)
            .join("\n"),
        );
      }
      return err ? new WgslError(`kernels/${spec.file} (${key}): ${err.message}`) : null;
    }),
  );
  const kernel = { name: key, pipeline, hasParams: /@group\(0\)\s*@binding\(0\)\s*var<uniform>/.test(code) };
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
  const errs = (await Promise.all(pending)).filter((e): e is WgslError => e !== null);
  if (errs.length) throw errs[0];
  if (gpu.errors.length) {
    const all = gpu.errors.splice(0);
    throw new GpuValidationError(`WebGPU reported ${all.length} error(s); first: ${all[0]}`);
  }
}
