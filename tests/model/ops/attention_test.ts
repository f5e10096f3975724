import {
  attentionBackward,
  attentionForward,
  attentionScratchBytes,
  type AttentionShape,
  attentionSharedBytes,
  type AttentionTiles,
  attentionTiles,
} from "../../../src/model/ops/attention.ts";
import { attentionBwd, attentionFwd, type AttnShape } from "../../../src/model/ref/attention.ts";
import { createBuffer, upload } from "../../../src/gpu/buffers.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { assertClose, randomArray, rng, testGpu } from "../../helpers/gpu.ts";

/** lse of a row with no visible key is ≈ −1e30 (MASKED + log T); compared apart from the finite ones. */
const MASKED_LSE = -1e29;

interface Case {
  name: string;
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  softcap: number | null;
  window: number | null;
  /** Real tokens per batch row (right padding), or an explicit [B*T] key mask; absent = no mask. */
  lengths?: number[];
  mask?: number[];
  /** Largest |pre-softcap score| over visible pairs (q is rescaled to it). */
  maxScore: number;
  /** query_pre_attn_scalar (the tiny model: 32 ≠ head_dim 24). */
  qpas?: number;
  tiles?: AttentionTiles;
}

const small = (BR: number, BC: number): AttentionTiles => ({
  fwd: { BR, BC },
  dkdv: { BR, BC },
  dq: { BR, BC },
  WG: 128,
});

// Ragged shapes: T = 1, primes, T not a multiple of the tile, the tiny model's T = 64 with window 8,
// Hq = Hkv and Hq = 4·Hkv, with and without softcap, right padding, D ∈ {8, 24, 64, 256}.
const CASES: Case[] = [
  { name: "T=1", B: 1, T: 1, Hq: 4, Hkv: 2, D: 24, softcap: 50, window: null, maxScore: 70 },
  {
    name: "T=7 Hq=Hkv no cap",
    B: 2,
    T: 7,
    Hq: 4,
    Hkv: 4,
    D: 8,
    softcap: null,
    window: null,
    lengths: [7, 5],
    maxScore: 12,
  },
  {
    name: "tiny layer 0: T=64 window 8",
    B: 2,
    T: 64,
    Hq: 4,
    Hkv: 2,
    D: 24,
    softcap: 50,
    window: 8,
    lengths: [64, 41],
    maxScore: 68,
  },
  {
    name: "tiny layer 1: T=64 global, Hq=4·Hkv",
    B: 3,
    T: 64,
    Hq: 4,
    Hkv: 1,
    D: 24,
    softcap: 50,
    window: null,
    lengths: [64, 50, 13],
    maxScore: 70,
  },
  {
    name: "T=37 window 8, padding makes fully masked rows",
    B: 2,
    T: 37,
    Hq: 4,
    Hkv: 2,
    D: 24,
    softcap: 50,
    window: 8,
    lengths: [37, 20],
    maxScore: 60,
  },
  {
    name: "T=13 D=64 window 4",
    B: 2,
    T: 13,
    Hq: 2,
    Hkv: 2,
    D: 64,
    softcap: 50,
    window: 4,
    lengths: [13, 6],
    maxScore: 70,
  },
  {
    name: "T=31 D=64 Hq=4·Hkv no cap",
    B: 1,
    T: 31,
    Hq: 8,
    Hkv: 2,
    D: 64,
    softcap: null,
    window: null,
    maxScore: 30,
  },
  {
    name: "T=17 D=256 window 5",
    B: 2,
    T: 17,
    Hq: 2,
    Hkv: 1,
    D: 256,
    softcap: 50,
    window: 5,
    lengths: [17, 9],
    maxScore: 70,
    qpas: 256,
  },
  {
    name: "T=53 tiles 8×8",
    B: 1,
    T: 53,
    Hq: 4,
    Hkv: 2,
    D: 24,
    softcap: 50,
    window: null,
    maxScore: 65,
    tiles: small(8, 8),
  },
  {
    name: "T=41 window 8 tiles 4×8, fully masked rows across tiles",
    B: 2,
    T: 41,
    Hq: 4,
    Hkv: 2,
    D: 24,
    softcap: 50,
    window: 8,
    lengths: [41, 30],
    maxScore: 70,
    tiles: { fwd: { BR: 4, BC: 8 }, dkdv: { BR: 8, BC: 4 }, dq: { BR: 4, BC: 8 }, WG: 128 },
  },
  {
    name: "left padding: fully masked first row",
    B: 1,
    T: 3,
    Hq: 1,
    Hkv: 1,
    D: 8,
    softcap: 50,
    window: null,
    mask: [0, 1, 1],
    maxScore: 20,
  },
  {
    name: "T=29 scattered key mask window 6 tiles 8×4",
    B: 2,
    T: 29,
    Hq: 4,
    Hkv: 2,
    D: 24,
    softcap: 50,
    window: 6,
    mask: Array.from({ length: 58 }, (_, i) => (i * 7) % 5 === 1 || i % 29 === 0 ? 1 : (i % 3 ? 1 : 0)),
    maxScore: 70,
    tiles: small(8, 4),
  },
  {
    name: "no softcap, scores up to ±300",
    B: 2,
    T: 23,
    Hq: 4,
    Hkv: 2,
    D: 24,
    softcap: null,
    window: null,
    lengths: [23, 11],
    maxScore: 300,
  },
  {
    name: "T=19 D=8 Hq=Hkv=1 window 3 tiles 2×2",
    B: 3,
    T: 19,
    Hq: 1,
    Hkv: 1,
    D: 8,
    softcap: null,
    window: 3,
    lengths: [19, 1, 10],
    maxScore: 40,
    tiles: small(2, 2),
  },
];

function keyMaskOf(c: Case): number[] | undefined {
  if (c.mask) return c.mask;
  if (!c.lengths) return undefined;
  const m: number[] = [];
  for (let b = 0; b < c.B; b++) for (let t = 0; t < c.T; t++) m.push(t < c.lengths[b] ? 1 : 0);
  return m;
}

/** Random q, k, v, dout with q rescaled so that max |pre-softcap score| over visible pairs is `maxScore`. */
function makeInputs(c: Case, s: AttnShape, rand: () => number) {
  const { B, T, Hq, Hkv, D } = c;
  const q = randomArray(B * T * Hq * D, rand);
  const k = randomArray(B * T * Hkv * D, rand);
  // Per-(token, head) magnitudes spread over ~e^±1, so some rows are peaked and some flat.
  for (let r = 0; r < B * T * Hq; r++) {
    const f = Math.exp(2 * rand() - 1);
    for (let d = 0; d < D; d++) q[r * D + d] *= f;
  }
  let max = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / (Hq / Hkv));
      for (let i = 0; i < T; i++) {
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dot += q[((b * T + i) * Hq + h) * D + d] * k[((b * T + j) * Hkv + g) * D + d];
          }
          max = Math.max(max, Math.abs(dot * s.scale));
        }
      }
    }
  }
  const f = c.maxScore / max;
  for (let n = 0; n < q.length; n++) q[n] *= f;
  const v = randomArray(B * T * Hkv * D, rand);
  const dout = randomArray(B * T * Hq * D, rand);
  return { q, k, v, dout };
}

function compareLse(got: Float32Array, want: Float64Array, what: string): number {
  let refMax = 0;
  let maxAbs = 0;
  let masked = 0;
  for (let n = 0; n < want.length; n++) {
    if (want[n] < MASKED_LSE) {
      masked++;
      if (!(got[n] < MASKED_LSE)) throw new Error(`${what}: row ${n} should be fully masked, lse ${got[n]}`);
      continue;
    }
    refMax = Math.max(refMax, Math.abs(want[n]));
    const d = Math.abs(got[n] - want[n]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
  }
  if (maxAbs > 1e-4 * Math.max(refMax, 1)) {
    throw new Error(`${what}: max abs ${maxAbs.toExponential(3)} vs max |lse| ${refMax}`);
  }
  return masked;
}

function assertFinite(x: Float32Array, what: string): void {
  for (let n = 0; n < x.length; n++) {
    if (!Number.isFinite(x[n])) throw new Error(`${what}: non-finite value ${x[n]} at ${n}`);
  }
}

interface Prepared {
  c: Case;
  s: AttnShape;
  inputs: ReturnType<typeof makeInputs>;
  bufs: Record<"q" | "k" | "v" | "dout" | "out" | "lse" | "dq" | "dk" | "dv" | "scratch", GPUBuffer>;
  mask: GPUBuffer | null;
}

/** Runs every case (forward then backward, one Recorder), compares; returns the number of fully masked rows. */
async function runCases(cases: Case[], seed: number): Promise<number> {
  const gpu = await testGpu();
  const rand = rng(seed);
  const rec = new Recorder(gpu, { label: "attention test" });
  const prepared: Prepared[] = [];
  for (const c of cases) {
    const keyMask = keyMaskOf(c);
    const s: AttnShape = {
      B: c.B,
      T: c.T,
      Hq: c.Hq,
      Hkv: c.Hkv,
      D: c.D,
      scale: (c.qpas ?? 32) ** -0.5,
      softcap: c.softcap,
      window: c.window,
      keyMask,
    };
    const inputs = makeInputs(c, s, rand);
    const { B, T, Hq, Hkv, D } = c;
    const qBytes = B * T * Hq * D * 4;
    const kBytes = B * T * Hkv * D * 4;
    const bufs = {
      q: upload(gpu, "q", inputs.q),
      k: upload(gpu, "k", inputs.k),
      v: upload(gpu, "v", inputs.v),
      dout: upload(gpu, "dout", inputs.dout),
      out: createBuffer(gpu, "out", qBytes),
      lse: createBuffer(gpu, "lse", B * Hq * T * 4),
      dq: createBuffer(gpu, "dq", qBytes),
      dk: createBuffer(gpu, "dk", kBytes),
      dv: createBuffer(gpu, "dv", kBytes),
      scratch: createBuffer(gpu, "scratch", attentionScratchBytes(c)),
    };
    const mask = keyMask ? upload(gpu, "keyMask", new Uint32Array(keyMask)) : null;
    const shape: AttentionShape = { ...s, tiles: c.tiles };
    attentionForward(rec, bufs.q, bufs.k, bufs.v, bufs.out, bufs.lse, mask, shape);
    // The backward consumes the GPU forward's own out and lse, as the model does.
    attentionBackward(
      rec,
      bufs.dout,
      bufs.q,
      bufs.k,
      bufs.v,
      bufs.out,
      bufs.lse,
      mask,
      bufs.dq,
      bufs.dk,
      bufs.dv,
      shape,
      bufs.scratch,
    );
    prepared.push({ c, s, inputs, bufs, mask });
  }
  rec.submit();
  let maskedRows = 0;
  for (const { c, s, inputs, bufs, mask } of prepared) {
    const what = `${c.name} (B${c.B} T${c.T} Hq${c.Hq} Hkv${c.Hkv} D${c.D})`;
    const { B, T, Hq, Hkv, D } = c;
    const [out, lse, dq, dk, dv] = await Promise.all([
      readF32(gpu, bufs.out, 0, B * T * Hq * D),
      readF32(gpu, bufs.lse, 0, B * Hq * T),
      readF32(gpu, bufs.dq, 0, B * T * Hq * D),
      readF32(gpu, bufs.dk, 0, B * T * Hkv * D),
      readF32(gpu, bufs.dv, 0, B * T * Hkv * D),
    ]);
    for (const [x, n] of [[out, "out"], [dq, "dq"], [dk, "dk"], [dv, "dv"]] as const) {
      assertFinite(x, `${what} ${n}`);
    }
    const ref = attentionFwd(inputs.q, inputs.k, inputs.v, s);
    const grad = attentionBwd(inputs.dout, inputs.q, inputs.k, inputs.v, s);
    assertClose(out, ref.out, { rel: 1e-4 }, `${what} out`);
    maskedRows += compareLse(lse, ref.lse, `${what} lse`);
    assertClose(dq, grad.dq, { rel: 1e-4 }, `${what} dq`);
    assertClose(dk, grad.dk, { rel: 1e-4 }, `${what} dk`);
    assertClose(dv, grad.dv, { rel: 1e-4 }, `${what} dv`);
    for (const b of Object.values(bufs)) b.destroy();
    mask?.destroy();
  }
  return maskedRows;
}

Deno.test(`attention forward + backward vs float64 reference on ${CASES.length} ragged shapes`, async () => {
  const maskedRows = await runCases(CASES, 20240917);
  // Window + padding and left padding leave rows with no visible key (uniform softmax, gradient everywhere).
  if (maskedRows < 100) throw new Error(`only ${maskedRows} fully masked rows exercised`);
});

Deno.test("attention at gemma-2-2b head size: B=1 T=256 D=256 Hq=8 Hkv=4, softcap 50", async () => {
  await runCases([
    {
      name: "gemma-2-2b heads",
      B: 1,
      T: 256,
      Hq: 8,
      Hkv: 4,
      D: 256,
      softcap: 50,
      window: null,
      maxScore: 70,
      qpas: 256,
    },
  ], 7);
});

Deno.test("attention tiles fit the device's workgroup memory at D = 8, 24, 64, 256", async () => {
  const gpu = await testGpu();
  const limit = gpu.limits.maxComputeWorkgroupStorageSize;
  for (const D of [8, 24, 64, 256]) {
    const t = attentionTiles(D, limit);
    for (const kernel of ["fwd", "dkdv", "dq"] as const) {
      const { BR, BC } = t[kernel];
      const bytes = attentionSharedBytes(kernel, D, BR, BC);
      if (bytes > limit) throw new Error(`D=${D} ${kernel} ${BR}×${BC}: ${bytes} > ${limit}`);
    }
  }
  // The lavapipe/WebGPU-default 32 KiB: D = 256 still gets multi-row tiles.
  const t = attentionTiles(256, 32768);
  if (t.fwd.BR * t.fwd.BC < 64 || t.dkdv.BC < 4 || t.dq.BR < 8) {
    throw new Error(`unexpectedly small tiles at D=256: ${JSON.stringify(t)}`);
  }
});
