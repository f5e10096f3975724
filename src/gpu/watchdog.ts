/**
 * Deadlines on GPU waits. A dispatch that never finishes (a pathological adapter, a driver hang) would
 * otherwise block the CLI or a test run until something outside kills it; every await on the GPU goes
 * through `gpuWait`, which fails after MAIEUTIC_GPU_TIMEOUT_S seconds (default 120) naming the kernels of
 * the last submitted command buffer and the adapter. Large enough for any single wait of a real run (a
 * seed-config step on lavapipe is seconds); 0 turns the watchdog off.
 */
import { UsageError } from "../util/errors.ts";

export const DEFAULT_GPU_TIMEOUT_S = 120;

export class GpuTimeoutError extends Error {
  override name = "GpuTimeoutError";
}

/** What the watchdog names when it fires: the adapter and the last command buffer's kernels. */
export interface GpuActivity {
  adapter: string;
  /** Label of the last submitted command buffer (Recorder label), if any. */
  label: string;
  /** Distinct kernel names of the last submitted command buffer, in dispatch order (capped). */
  kernels: string[];
}

/** The watchdog's limit in ms from MAIEUTIC_GPU_TIMEOUT_S (pure over the value given). */
export function gpuTimeoutMs(value: string | undefined): number {
  if (value === undefined || value === "") return DEFAULT_GPU_TIMEOUT_S * 1000;
  const s = Number(value);
  if (!Number.isFinite(s) || s < 0) {
    throw new UsageError(
      `MAIEUTIC_GPU_TIMEOUT_S=${value} is not valid: give seconds (e.g. 300), or 0 to turn the GPU watchdog off`,
    );
  }
  return s * 1000;
}

function timeoutFromEnv(): number {
  let v: string | undefined;
  try {
    v = Deno.env.get("MAIEUTIC_GPU_TIMEOUT_S");
  } catch {
    v = undefined;
  }
  return gpuTimeoutMs(v);
}

/** The message of a fired watchdog (pure, tested). */
export function timeoutMessage(what: string, ms: number, a: GpuActivity): string {
  const kernels = a.kernels.length ? a.kernels.join(", ") : "none recorded";
  return `GPU did not finish ${what} within ${ms / 1000} s on ${a.adapter}` +
    `${
      a.label ? ` (last command buffer "${a.label}"; its kernels: ${kernels})` : ` (kernels: ${kernels})`
    }. ` +
    "A software OpenGL adapter is this slow: install the Vulkan driver (`sudo apt-get install -y " +
    "mesa-vulkan-drivers libvulkan1`, or your GPU's Vulkan driver); if the work is legitimately long, raise " +
    "MAIEUTIC_GPU_TIMEOUT_S (0 = no limit).";
}

/** Awaits `p`, or throws GpuTimeoutError after the configured deadline. */
export async function gpuWait<T>(
  p: Promise<T>,
  what: string,
  activity: GpuActivity,
  ms = timeoutFromEnv(),
): Promise<T> {
  if (ms <= 0) return await p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GpuTimeoutError(timeoutMessage(what, ms, activity))), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
