/**
 * The WebGPU device handle: the project's one process-wide singleton (brief: "no global mutable singletons
 * beyond the device handle"). Everything else that touches GPU objects lives in src/gpu and receives a Gpu.
 */

import { UsageError } from "../util/errors.ts";

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

/** Opens (once) the high-performance adapter, falling back to any adapter, software included. */
export function getGpu(): Promise<Gpu> {
  handle ??= openGpu().catch((e) => {
    handle = undefined;
    throw e;
  });
  return handle;
}

async function openGpu(): Promise<Gpu> {
  if (!("gpu" in navigator) || !navigator.gpu) throw new NoGpuError("navigator.gpu is missing");
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" }) ??
    await navigator.gpu.requestAdapter();
  if (!adapter) throw new NoGpuError("requestAdapter returned null");
  const requiredFeatures = WANTED_FEATURES.filter((f) =>
    f !== "subgroups" && adapter.features.has(f)
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
  const isSoftware = Boolean((ai as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter) ||
    /llvmpipe|lavapipe|swiftshader|warp|software/i.test(description);
  return {
    device,
    info: { vendor: ai.vendor, architecture: ai.architecture, device: ai.device, description },
    isSoftware,
    f16: device.features.has("shader-f16"),
    subgroups: device.features.has("subgroups" as GPUFeatureName),
    subgroupSizes: subgroupSizes(ai),
    timestamps: device.features.has("timestamp-query"),
    limits: device.limits,
    errors,
  };
}
