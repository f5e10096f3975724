/**
 * The WebGPU device handle: the project's one process-wide singleton (brief: "no global mutable singletons
 * beyond the device handle"). Everything else that touches GPU objects lives in src/gpu and receives a Gpu.
 */

import { UsageError } from "../util/errors.ts";
import { type Backend, type BackendChoice, chooseBackend } from "./backend.ts";
import {
  allowSlowFromEnv,
  calibrate,
  MIN_CALIBRATION_GFLOPS as MIN_GFLOPS,
  refusalReason,
  SLOW_ADAPTER_FIX,
  SlowAdapterError,
} from "./calibrate.ts";
import { resolveKernels } from "./variants.ts";
import { type GpuActivity, gpuWait } from "./watchdog.ts";

export const INSTALL_HINT =
  "No WebGPU adapter found. Without a GPU on Debian/Ubuntu install the software Vulkan driver (lavapipe): " +
  "`sudo apt-get install -y mesa-vulkan-drivers libvulkan1` (bookworm-backports has a ~5x faster Mesa). " +
  "On a GPU VM install the vendor's Vulkan driver (NVIDIA: the driver package with Vulkan ICD; Metal/DX12 " +
  "work out of the box on macOS/Windows).";

export class NoGpuError extends Error {
  override name = "NoGpuError";
  constructor(detail = "") {
    super(INSTALL_HINT + (detail ? ` (${detail})` : ""));
  }
}

/** Optional features we use when present (docs/ARCHITECTURE.md#performance). */
export const WANTED_FEATURES = ["shader-f16", "timestamp-query", "subgroups"] as const;

/** The limits we rely on; `info` prints them. */
export const RELIED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupsPerDimension",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxStorageBuffersPerShaderStage",
  "minUniformBufferOffsetAlignment",
  "minStorageBufferOffsetAlignment",
] as const;

export interface Gpu {
  readonly device: GPUDevice;
  readonly info: { vendor: string; architecture: string; device: string; description: string };
  /** The wgpu backend the device runs on and how it was chosen (src/gpu/backend.ts). */
  readonly backend: Backend | null;
  readonly backendChoice: BackendChoice;
  /** GFLOP/s of the calibration dispatch (src/gpu/calibrate.ts); null when MAIEUTIC_ALLOW_SLOW_ADAPTER skipped it. */
  calibration: { gflops: number; ms: number } | null;
  /** The last submitted command buffer, for the watchdog's message (Recorder.submit updates it). */
  readonly activity: GpuActivity;
  /** lavapipe / SwiftShader / WARP: a CPU implementation. */
  readonly isSoftware: boolean;
  readonly f16: boolean;
  readonly subgroups: boolean;
  /** The adapter's subgroup width range (adapter.info), when it reports one. */
  readonly subgroupSizes: { min: number; max: number } | null;
  readonly timestamps: boolean;
  readonly limits: GPUSupportedLimits;
  /** Uncaptured WebGPU errors since the last checkKernels() (which throws the first). */
  readonly errors: string[];
}

let handle: Promise<Gpu> | undefined;

/** lavapipe / llvmpipe / SwiftShader / WARP: a CPU implementation, by the adapter's own word or its name. */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  return Boolean((info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter) ||
    /llvmpipe|lavapipe|swiftshader|warp|software/i.test(info.description ?? "");
}

/** MAIEUTIC_F16: "0" (never use shader-f16: the f32 kernels, as on GL adapters), "1" (require it), or undefined. */
export function f16FromEnv(): "0" | "1" | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get("MAIEUTIC_F16");
  } catch {
    return undefined;
  }
  if (v === undefined || v === "") return undefined;
  if (v === "0" || v === "1") return v;
  throw new UsageError(
    `MAIEUTIC_F16=${v} is not valid: set it to 0 (f32 kernels only), 1 (require shader-f16), or unset it`,
  );
}

/** MAIEUTIC_SUBGROUPS: "0" (never use subgroups), "1" (require them), or undefined (use them when present). */
export function subgroupsFromEnv(): "0" | "1" | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get("MAIEUTIC_SUBGROUPS");
  } catch {
    return undefined; // no --allow-env: the default
  }
  if (v === undefined || v === "") return undefined;
  if (v === "0" || v === "1") return v;
  throw new UsageError(
    `MAIEUTIC_SUBGROUPS=${v} is not valid: set it to 0 (no subgroup operations), 1 (require them), or unset it`,
  );
}

/**
 * Requests the device, with `subgroups` when the adapter can give it. Deno 2.9 leaves "subgroups" out of
 * adapter.features even where wgpu supports it (lavapipe, NVIDIA Vulkan), yet grants it when requested; so it
 * is requested and the device opened without it when the request fails. MAIEUTIC_SUBGROUPS=0 skips it.
 */
async function requestWithSubgroups(
  adapter: GPUAdapter,
  features: GPUFeatureName[],
  requiredLimits: Record<string, number>,
): Promise<GPUDevice> {
  if (subgroupsFromEnv() !== "0") {
    try {
      return await adapter.requestDevice({
        requiredFeatures: [...features, "subgroups" as GPUFeatureName],
        requiredLimits,
      });
    } catch {
      // not available on this adapter: the kernels use their fallbacks
    }
  }
  return await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
}

function subgroupSizes(info: GPUAdapterInfo): { min: number; max: number } | null {
  const i = info as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number };
  return typeof i.subgroupMinSize === "number" && typeof i.subgroupMaxSize === "number" &&
      i.subgroupMaxSize > 0
    ? { min: i.subgroupMinSize, max: i.subgroupMaxSize }
    : null;
}

/**
 * Opens (once) the high-performance adapter of the preferred backend (Vulkan, Metal, DX12, then GL), refuses
 * a pathological one with the fix (src/gpu/calibrate.ts), and returns the handle.
 */
export function getGpu(): Promise<Gpu> {
  handle ??= openGpu().then(resolveKernels).then(assess).catch((e) => {
    handle = undefined;
    throw e;
  });
  return handle;
}

/** Refuses a software GL adapter, or one whose calibration dispatch crawls, unless the user allows it. */
async function assess(gpu: Gpu): Promise<Gpu> {
  if (allowSlowFromEnv()) return gpu;
  const why = refusalReason({
    backend: gpu.backend,
    isSoftware: gpu.isSoftware,
    description: gpu.info.description,
  });
  if (why) {
    gpu.device.destroy();
    throw new SlowAdapterError(`${why} ${SLOW_ADAPTER_FIX}`);
  }
  gpu.calibration = await calibrate(gpu);
  if (gpu.calibration.gflops < MIN_GFLOPS) {
    const adapter = gpu.info.description || gpu.info.vendor;
    gpu.device.destroy();
    throw new SlowAdapterError(
      `The WebGPU adapter ${adapter} (${gpu.backend ?? "unknown backend"}) ran the calibration dispatch at ` +
        `${gpu.calibration.gflops.toFixed(3)} GFLOP/s, far below any usable adapter (>= ${MIN_GFLOPS}). ` +
        SLOW_ADAPTER_FIX,
    );
  }
  return gpu;
}

async function openGpu(): Promise<Gpu> {
  if (!("gpu" in navigator) || !navigator.gpu) throw new NoGpuError("navigator.gpu is missing");
  const choice = await chooseBackend();
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }) ??
    await navigator.gpu.requestAdapter();
  if (!adapter) {
    const tried = choice.probes.length ? choice.probes.map((p) => p.backend).join(", ") : choice.backend;
    throw new NoGpuError(`requestAdapter returned null; backends tried: ${tried ?? "default"}`);
  }
  const f16 = f16FromEnv();
  if (f16 === "1" && !adapter.features.has("shader-f16")) {
    throw new UsageError(
      `MAIEUTIC_F16=1 but the adapter ${adapter.info.description || adapter.info.vendor} lacks shader-f16: ` +
        "unset it to use the f32 kernels",
    );
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) =>
    f !== "subgroups" && adapter.features.has(f) && !(f === "shader-f16" && f16 === "0")
  ) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === "number") requiredLimits[key] = v;
  }
  const device = await requestWithSubgroups(adapter, requiredFeatures, requiredLimits);
  const errors: string[] = [];
  device.addEventListener("uncapturederror", (ev) => {
    const msg = (ev as GPUUncapturedErrorEvent).error.message;
    if (errors.length < 100) errors.push(msg);
  });
  const ai = adapter.info;
  const description = ai.description ?? "";
  const isSoftware = isSoftwareAdapter(ai);
  return {
    device,
    info: { vendor: ai.vendor, architecture: ai.architecture, device: ai.device, description },
    backend: choice.backend,
    backendChoice: choice,
    calibration: null,
    activity: {
      adapter: `${description || ai.vendor} (${choice.backend ?? "default backend"})`,
      label: "",
      kernels: [],
    },
    isSoftware,
    f16: device.features.has("shader-f16"),
    subgroups: device.features.has("subgroups" as GPUFeatureName),
    subgroupSizes: subgroupSizes(ai),
    timestamps: device.features.has("timestamp-query"),
    limits: device.limits,
    errors,
  };
}

/** Awaits GPU work under the watchdog (src/gpu/watchdog.ts), naming this device's last kernels if it fires. */
export function waitGpu<T>(gpu: Gpu, p: Promise<T>, what: string): Promise<T> {
  return gpuWait(p, what, gpu.activity);
}
