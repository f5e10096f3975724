/**
 * Which wgpu backend the process opens: Vulkan, Metal or DX12 before OpenGL.
 *
 * Why it matters: a fresh Debian machine has Mesa's GL driver but no Vulkan ICD, and Deno's WebGPU then finds
 * llvmpipe through wgpu's GL backend: no shader-f16, no subgroups, and a driver that stalls for minutes
 * compiling our kernels where the same CPU through lavapipe's Vulkan trains the try-out in under a minute. Deno creates its wgpu instance once per isolate, on the first
 * requestAdapter, with the backends named by DENO_WEBGPU_BACKEND (a comma list; unset = all), and does not
 * expose which backend an adapter came from. So each candidate is probed in a short-lived Worker (its own
 * isolate, so its own instance), in order of preference, and the main isolate is then pinned to the first
 * backend that has an adapter by setting DENO_WEBGPU_BACKEND before its first requestAdapter.
 *
 * Settings: MAIEUTIC_BACKEND=auto|vulkan|metal|dx12|gl forces one; a DENO_WEBGPU_BACKEND the user set is
 * honoured as the set of backends to choose from (a single name forces it, a list is probed in our order).
 */
import { UsageError } from "../util/errors.ts";

export const BACKENDS = ["vulkan", "metal", "dx12", "gl"] as const;
export type Backend = (typeof BACKENDS)[number];

export interface BackendChoice {
  /** The backend the device was opened on, or null where nothing answered a probe (no WebGPU at all). */
  backend: Backend | null;
  /** How it was chosen, for `maieutic info` and error messages. */
  how: "auto" | "MAIEUTIC_BACKEND" | "DENO_WEBGPU_BACKEND";
  /** What each probed backend answered (adapter description, or null when it had none). */
  probes: { backend: Backend; adapter: string | null }[];
}

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined; // no --allow-env: the defaults
  }
}

/**
 * The ordered candidates from the settings (pure: tests call it with explicit values).
 * Throws UsageError for a name that is not a backend.
 */
export function backendCandidates(
  maieuticBackend: string | undefined,
  denoBackend: string | undefined,
): { candidates: Backend[]; how: BackendChoice["how"] } {
  const parse = (value: string, setting: string): Backend[] => {
    const names = value.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
    for (const n of names) {
      if (!(BACKENDS as readonly string[]).includes(n)) {
        throw new UsageError(
          `${setting}=${value}: "${n}" is not a WebGPU backend; use one of ${BACKENDS.join(", ")}` +
            (setting === "MAIEUTIC_BACKEND" ? ", or auto (Vulkan, Metal or DX12 before GL)" : ""),
        );
      }
    }
    // Our preference order, restricted to the named ones: a list never prefers GL over a native backend.
    return BACKENDS.filter((b) => names.includes(b));
  };
  if (maieuticBackend !== undefined && maieuticBackend.toLowerCase() !== "auto") {
    return { candidates: parse(maieuticBackend, "MAIEUTIC_BACKEND"), how: "MAIEUTIC_BACKEND" };
  }
  if (denoBackend !== undefined) {
    return { candidates: parse(denoBackend, "DENO_WEBGPU_BACKEND"), how: "DENO_WEBGPU_BACKEND" };
  }
  return { candidates: [...BACKENDS], how: "auto" };
}

/** The candidates a platform can have (wgpu: Metal only on Apple, DX12 only on Windows). */
export function possibleOn(os: typeof Deno.build.os, backend: Backend): boolean {
  if (backend === "metal") return os === "darwin";
  if (backend === "dx12") return os === "windows";
  return true;
}

// The probe: a Worker from a blob URL (so `deno compile` needs no extra module) that asks for an adapter.
const PROBE_SOURCE = `self.onmessage = async () => {
  let d = null;
  try {
    const a = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
    if (a) d = a.info.description || a.info.vendor || "unnamed adapter";
  } catch { d = null; }
  self.postMessage(d);
};`;

const PROBE_TIMEOUT_MS = 15_000;

/** Asks a fresh isolate whether `backend` has an adapter; its description, or null. */
async function probe(backend: Backend): Promise<string | null> {
  Deno.env.set("DENO_WEBGPU_BACKEND", backend);
  const url = URL.createObjectURL(new Blob([PROBE_SOURCE], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<string | null>((resolve) => {
      timer = setTimeout(() => resolve(null), PROBE_TIMEOUT_MS);
      worker.onmessage = (e) => resolve(typeof e.data === "string" ? e.data : null);
      worker.onerror = (e) => {
        e.preventDefault();
        resolve(null);
      };
      worker.postMessage(0);
    });
  } finally {
    clearTimeout(timer);
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}

/**
 * Picks the backend and pins DENO_WEBGPU_BACKEND to it. Must run before this isolate's first
 * navigator.gpu.requestAdapter (getGpu calls it first). A single forced backend is not probed.
 */
export async function chooseBackend(): Promise<BackendChoice> {
  const original = env("DENO_WEBGPU_BACKEND");
  const { candidates, how } = backendCandidates(env("MAIEUTIC_BACKEND"), original);
  if (candidates.length === 1) {
    Deno.env.set("DENO_WEBGPU_BACKEND", candidates[0]);
    return { backend: candidates[0], how, probes: [] };
  }
  const probes: BackendChoice["probes"] = [];
  for (const b of candidates.filter((c) => possibleOn(Deno.build.os, c))) {
    const adapter = await probe(b);
    probes.push({ backend: b, adapter });
    if (adapter !== null) {
      Deno.env.set("DENO_WEBGPU_BACKEND", b);
      return { backend: b, how, probes };
    }
  }
  // Nothing answered: restore the user's setting (or all backends) for the error path.
  if (original === undefined) Deno.env.delete("DENO_WEBGPU_BACKEND");
  else Deno.env.set("DENO_WEBGPU_BACKEND", original);
  return { backend: null, how, probes };
}
