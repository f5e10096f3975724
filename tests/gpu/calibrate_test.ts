// kernels/calibrate.wgsl (src/gpu/ops/calibrate.ts) against its float64 reference (src/gpu/ops/calibrate_ref.ts).
import { recordCalibration } from "../../src/gpu/ops/calibrate.ts";
import { calibrationRef } from "../../src/gpu/ops/calibrate_ref.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { assertClose, testGpu } from "../helpers/gpu.ts";

Deno.test("kernels/calibrate.wgsl vs its float64 reference on ragged sizes", async () => {
  const gpu = await testGpu();
  for (const [n, iters] of [[1, 1], [70, 3], [200, 64]]) {
    const out = gpu.device.createBuffer({
      size: n * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    const rec = new Recorder(gpu);
    recordCalibration(rec, out, iters, n);
    rec.submit();
    assertClose(await readF32(gpu, out), calibrationRef(n, iters), { rel: 1e-5 }, `n ${n}, iters ${iters}`);
    out.destroy();
  }
});
