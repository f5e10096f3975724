/**
 * Adapter choice and refusal (src/gpu/backend.ts, calibrate.ts, watchdog.ts; the calibration kernel itself in
 * tests/gpu/calibrate_test.ts): the pure parts here; the CLI on a software OpenGL adapter in
 * tests/cli/any_adapter_test.ts.
 */
import assert from "node:assert/strict";
import { backendCandidates, possibleOn } from "../../src/gpu/backend.ts";
import { refusalReason } from "../../src/gpu/calibrate.ts";
import { GpuTimeoutError, gpuTimeoutMs, gpuWait, timeoutMessage } from "../../src/gpu/watchdog.ts";
import { UsageError } from "../../src/util/errors.ts";
import { testGpu } from "../helpers/gpu.ts";

Deno.test("backendCandidates: auto prefers Vulkan, Metal, DX12 before GL", () => {
  assert.deepEqual(backendCandidates(undefined, undefined), {
    candidates: ["vulkan", "metal", "dx12", "gl"],
    how: "auto",
  });
  assert.deepEqual(backendCandidates("auto", undefined).how, "auto");
});

Deno.test("backendCandidates: MAIEUTIC_BACKEND forces one and wins over DENO_WEBGPU_BACKEND", () => {
  assert.deepEqual(backendCandidates("gl", "vulkan"), { candidates: ["gl"], how: "MAIEUTIC_BACKEND" });
  assert.deepEqual(backendCandidates("Vulkan", undefined).candidates, ["vulkan"]);
});

Deno.test("backendCandidates: a DENO_WEBGPU_BACKEND list is probed in our order, GL last", () => {
  assert.deepEqual(backendCandidates(undefined, "gl,vulkan"), {
    candidates: ["vulkan", "gl"],
    how: "DENO_WEBGPU_BACKEND",
  });
  assert.deepEqual(backendCandidates(undefined, "gl").candidates, ["gl"]);
});

Deno.test("backendCandidates: an unknown name is a usage error naming the setting and the choices", () => {
  assert.throws(
    () => backendCandidates("opengl", undefined),
    (e) => e instanceof UsageError && /MAIEUTIC_BACKEND=opengl.*vulkan, metal, dx12, gl/.test(e.message),
  );
  assert.throws(
    () => backendCandidates(undefined, "vulkan,webgl"),
    (e) => e instanceof UsageError && /DENO_WEBGPU_BACKEND/.test(e.message),
  );
});

Deno.test("possibleOn: Metal only on macOS, DX12 only on Windows", () => {
  assert.ok(!possibleOn("linux", "metal") && !possibleOn("linux", "dx12"));
  assert.ok(possibleOn("linux", "vulkan") && possibleOn("linux", "gl"));
  assert.ok(possibleOn("darwin", "metal") && possibleOn("windows", "dx12"));
});

Deno.test("refusalReason: software OpenGL is refused, software Vulkan and hardware GL are not", () => {
  assert.match(refusalReason({ backend: "gl", isSoftware: true, description: "llvmpipe" }) ?? "", /OpenGL/);
  assert.deepEqual(refusalReason({ backend: "vulkan", isSoftware: true, description: "llvmpipe" }), null);
  assert.deepEqual(refusalReason({ backend: "gl", isSoftware: false, description: "Mali-G78" }), null);
});

Deno.test("gpuTimeoutMs: default 120 s, 0 turns it off, nonsense is a usage error", () => {
  assert.deepEqual(gpuTimeoutMs(undefined), 120_000);
  assert.deepEqual(gpuTimeoutMs("2.5"), 2500);
  assert.deepEqual(gpuTimeoutMs("0"), 0);
  assert.throws(
    () => gpuTimeoutMs("soon"),
    (e) => e instanceof UsageError && /MAIEUTIC_GPU_TIMEOUT_S/.test(e.message),
  );
  assert.throws(() => gpuTimeoutMs("-1"), UsageError);
});

Deno.test("gpuWait: a wait that never ends fails naming the kernels and the adapter", async () => {
  const activity = {
    adapter: "llvmpipe (gl)",
    label: "train-step",
    kernels: ["reduce_rows.wgsl", "matmul.wgsl"],
  };
  const never = new Promise<void>(() => {});
  const e = await gpuWait(never, "a readback", activity, 50).then(() => null, (err) => err);
  assert.ok(e instanceof GpuTimeoutError, `${e}`);
  assert.match(e.message, /a readback within 0\.05 s on llvmpipe \(gl\)/);
  assert.match(e.message, /"train-step".*reduce_rows\.wgsl, matmul\.wgsl/);
  assert.match(e.message, /mesa-vulkan-drivers/);
  assert.deepEqual(await gpuWait(Promise.resolve(7), "x", activity, 50), 7);
  assert.match(timeoutMessage("x", 1000, { adapter: "a", label: "", kernels: [] }), /kernels: none recorded/);
});

Deno.test("the opened device names its backend, passed calibration, and the watchdog sees its last kernels", async () => {
  const gpu = await testGpu();
  assert.ok(gpu.backend !== null, "a backend was chosen");
  assert.ok(
    gpu.backend !== "gl" || !gpu.isSoftware,
    "a software GL adapter is never opened without the override",
  );
  assert.ok(
    gpu.calibration && gpu.calibration.gflops > 0.05,
    `calibration ${JSON.stringify(gpu.calibration)}`,
  );
  assert.ok(
    gpu.activity.kernels.some((k) => k.startsWith("calibrate.wgsl")),
    `activity ${JSON.stringify(gpu.activity)}`,
  );
});
