/**
 * Deterministic pseudo-random benchmark inputs, filled on the GPU (kernels/fill_random.wgsl through
 * src/model/ops/fill_random.ts): one seed per buffer, counted from 99 in the order the buffers are filled, so
 * a bench run always times the same values. Shared by the kernel cases (src/bench/cases/) and the ladder.
 */
import { createBuffer } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { idle } from "../gpu/readback.ts";
import { Recorder } from "../gpu/recorder.ts";
import { type FillMode, fillRandom } from "../model/ops/fill_random.ts";
import { nf4Bytes, type Nf4Weight } from "../model/ops/linear.ts";

export class Filler {
  private rec: Recorder;
  private seed = 99;
  constructor(readonly gpu: Gpu) {
    this.rec = new Recorder(gpu, { label: "bench-fill" });
  }
  fill(buf: GPUBuffer, words: number, mode: FillMode, lo = -1, hi = 1): GPUBuffer {
    fillRandom(this.rec, buf, { words, mode, lo, hi, seed: this.seed++ });
    return buf;
  }
  f32(label: string, n: number, lo = -1, hi = 1): GPUBuffer {
    return this.fill(createBuffer(this.gpu, label, n * 4), n, "f32", lo, hi);
  }
  f16(label: string, n: number, lo = -1, hi = 1): GPUBuffer {
    const words = Math.ceil(n / 2);
    return this.fill(createBuffer(this.gpu, label, words * 4), words, "f16", lo, hi);
  }
  /** A random NF4 weight [out, inF]: random codes and block scales, second-level absmax sized for inF. */
  nf4(label: string, out: number, inF: number): Nf4Weight {
    const b = nf4Bytes(out * inF);
    const scale = 0.01 / Math.sqrt(inF / 64);
    return {
      kind: "nf4",
      shape: [out, inF],
      packed: this.fill(createBuffer(this.gpu, `${label}.packed`, b.packed), b.packed / 4, "bits"),
      qabsmax: this.fill(createBuffer(this.gpu, `${label}.qabsmax`, b.qabsmax), b.qabsmax / 4, "bits"),
      absmax2: this.fill(
        createBuffer(this.gpu, `${label}.absmax2`, b.absmax2),
        b.absmax2 / 4,
        "f32",
        scale,
        scale,
      ),
      offset: 2 * scale,
    };
  }
  /** Submits the fills and waits for them. */
  async done(): Promise<void> {
    this.rec.submit();
    await idle(this.gpu);
    this.rec = new Recorder(this.gpu, { label: "bench-fill" });
  }
}
