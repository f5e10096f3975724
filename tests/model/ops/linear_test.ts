/**
 * The QLoRA projection (src/model/ops/linear.ts): NF4 dequant-in-tile vs the bitsandbytes goldens (bit-exact),
 * the NF4 products vs float64 on ragged shapes (f32 and f16 operands), and the LoRA forward/backward vs the float64
 * reference (src/model/ref/linear.ts) with and without dropout, gradient accumulation, dense weights, and
 * activations of realistic size. All cases of a test are recorded into one Recorder and read back at the end.
 * Every test runs against both kernel families, forced through LinearShape.kernels: "tiled" (nf4_matmul.wgsl,
 * nf4_matvec.wgsl when tokens ≤ 8, nf4_matmul_dx.wgsl) and "regblock" (nf4_matmul_regblock.wgsl,
 * nf4_matmul_dx_regblock.wgsl); dense weights go through matmul() with the same option.
 */
import {
  type ComputeType,
  type DenseWeight,
  type DropoutSpec,
  linearBackward,
  linearForward,
  linearForwardPath,
  type LinearShape,
  type LinearWeight,
  type Nf4Data,
  uploadNf4,
} from "../../../src/model/ops/linear.ts";
import { KERNEL_VARIANTS, type KernelVariant } from "../../../src/gpu/ops/matmul.ts";
import { recordDropoutMask } from "../../../src/model/ops/lora_dropout.ts";
import { dequantizeNf4, type Nf4Tensor, quantizeNf4 } from "../../../src/quant/nf4.ts";
import { matmulRef } from "../../../src/gpu/ops/matmul_ref.ts";
import { loraLinearBwd, loraLinearFwd } from "../../../src/model/ref/linear.ts";
import { upload } from "../../../src/gpu/buffers.ts";
import type { Gpu } from "../../../src/gpu/device.ts";
import { Recorder } from "../../../src/gpu/recorder.ts";
import { readF32 } from "../../../src/gpu/readback.ts";
import { f16BitsToF32, f32ToF16Bits, toF16Array } from "../../../src/util/half.ts";
import { readSafetensorsFile } from "../../../src/safetensors/read_file.ts";
import {
  assertClose,
  computeTypes,
  f16Only,
  randomArray,
  rng,
  testGpu,
  testReductionsIf,
} from "../../helpers/gpu.ts";

const GOLDEN = new URL("../../fixtures/golden/nf4.safetensors", import.meta.url).pathname;

function roundF16(a: ArrayLike<number>): Float32Array<ArrayBuffer> {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    out[i] = f16BitsToF32(f32ToF16Bits(Math.max(-65504, Math.min(65504, a[i]))));
  }
  return out;
}

/** The operand as the GPU sees it: rounded to f16 (after the clamp to ±65504) on the f16 path. */
function asOperand(a: Float32Array<ArrayBuffer>, c: ComputeType): Float32Array<ArrayBuffer> {
  return c === "f16" ? roundF16(a) : a;
}

function identity(n: number): Float32Array<ArrayBuffer> {
  const x = new Float32Array(n * n);
  for (let i = 0; i < n; i++) x[i * n + i] = 1;
  return x;
}

function assertBitExact(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      throw new Error(`${what}: element ${i}: got ${got[i]}, want ${want[i]} (bit-exact)`);
    }
  }
}

function assertFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${what}: element ${i} is ${a[i]}`);
  }
}

/** f32 and f16 operands; f32 only without shader-f16 (the f16 refusal: the "f16 operands" tests below). */
const computes = (gpu: Gpu): ComputeType[] => computeTypes(gpu);

/** A random weight quantized to NF4 (bitsandbytes layout) and its exact dequantization. */
function nf4Weight(gpu: Gpu, out: number, inF: number, rand: () => number, label: string) {
  const t = quantizeNf4(randomArray(out * inF, rand, 0.05), [out, inF]);
  return { weight: uploadNf4(gpu, t, label) as LinearWeight, deq: dequantizeNf4(t) };
}

type Check = () => Promise<void>;

for (const kernels of KERNEL_VARIANTS) {
  Deno.test(`[${kernels}] nf4_matmul and nf4_matmul_dx dequantize bit-exactly as bitsandbytes (golden nf4, identity inputs)`, async () => {
    const gpu = await testGpu();
    const { tensors } = await readSafetensorsFile(GOLDEN);
    const get = (k: string) => tensors.get(k)!;
    const rec = new Recorder(gpu);
    const checks: Check[] = [];
    for (const name of ["gate_proj_l0", "odd_100x170", "tiny_7x13"]) {
      const [out, inF] = get(`${name}.weight`).shape;
      const deq = get(`${name}.dequant`).data as Float32Array;
      const w = uploadNf4(gpu, {
        shape: [out, inF],
        n: out * inF,
        packed: get(`${name}.packed`).data as Uint8Array,
        qabsmax: get(`${name}.qabsmax`).data as Uint8Array,
        absmax2: get(`${name}.absmax2`).data as Float32Array,
        offset: (get(`${name}.offset`).data as Float32Array)[0],
      }, name);
      for (const compute of computes(gpu)) {
        // f16: the dequantized f32 value rounded to nearest even, as `.to(torch.float16)` does.
        const want = compute === "f16" ? roundF16(deq) : deq;
        // Forward with x = I (M = in): y[m, n] = W[n, m].
        const s: LinearShape = { tokens: inF, inF, outF: out, compute, kernels };
        const y = upload(gpu, "y", new Float32Array(inF * out));
        linearForward(rec, { x: upload(gpu, "x", identity(inF)), weight: w, y }, s);
        // Input gradient with dy = I (M = out): dx[m, k] = W[m, k].
        const dx = upload(gpu, "dx", new Float32Array(out * inF));
        linearBackward(rec, {
          dy: upload(gpu, "dy", identity(out)),
          x: upload(gpu, "x0", new Float32Array(4)),
          weight: w,
          dx,
        }, { ...s, tokens: out });
        checks.push(async () => {
          const gy = await readF32(gpu, y, 0, inF * out);
          const wt = new Float32Array(inF * out);
          for (let n = 0; n < out; n++) for (let k = 0; k < inF; k++) wt[k * out + n] = want[n * inF + k];
          assertBitExact(gy, wt, `${name} ${compute} forward`);
          assertBitExact(await readF32(gpu, dx, 0, out * inF), want, `${name} ${compute} dx`);
        });
      }
    }
    rec.submit();
    for (const c of checks) await c();
  });

  Deno.test(`[${kernels}] NF4 dequant-in-tile is bit-exact with dequantizeNf4 on random codes, qabsmax and absmax2`, async () => {
    const gpu = await testGpu();
    const rand = rng(404);
    // 300 × 520 = 156000 elements: 2438 blocks (every qabsmax byte, 10 absmax2 blocks), in % 64 != 0.
    const [out, inF] = [300, 520];
    const n = out * inF;
    const nb = Math.ceil(n / 64);
    const bytes = (k: number) => Uint8Array.from({ length: k }, () => Math.floor(rand() * 256));
    const t: Nf4Tensor = {
      shape: [out, inF],
      n,
      packed: bytes(Math.ceil(n / 2)),
      qabsmax: bytes(nb),
      absmax2: Float32Array.from({ length: Math.ceil(nb / 256) }, () => 0.001 + 0.05 * rand()),
      offset: Math.fround(0.01 + 0.03 * rand()),
    };
    const want = dequantizeNf4(t);
    const w = uploadNf4(gpu, t, "random-nf4");
    const rec = new Recorder(gpu);
    const outs: { compute: ComputeType; y: GPUBuffer; dx: GPUBuffer }[] = [];
    for (const compute of computes(gpu)) {
      const y = upload(gpu, "y", new Float32Array(inF * out));
      const dx = upload(gpu, "dx", new Float32Array(n));
      linearForward(rec, { x: upload(gpu, "x", identity(inF)), weight: w, y }, {
        tokens: inF,
        inF,
        outF: out,
        compute,
        kernels,
      });
      linearBackward(rec, { dy: upload(gpu, "dy", identity(out)), x: y, weight: w, dx }, {
        tokens: out,
        inF,
        outF: out,
        compute,
        kernels,
      });
      outs.push({ compute, y, dx });
    }
    rec.submit();
    for (const { compute, y, dx } of outs) {
      const wc = compute === "f16" ? roundF16(want) : want;
      const gy = await readF32(gpu, y, 0, inF * out);
      const wt = new Float32Array(n);
      for (let o = 0; o < out; o++) for (let k = 0; k < inF; k++) wt[k * out + o] = wc[o * inF + k];
      assertBitExact(gy, wt, `forward ${compute}`);
      assertBitExact(await readF32(gpu, dx, 0, n), wc, `dx ${compute}`);
    }
  });

  Deno.test(`[${kernels}] small-M path (tokens ≤ 8, decode) dequantizes bit-exactly: identity rows in chunks of 1..8 through views, golden and random NF4`, async () => {
    const gpu = await testGpu();
    const { tensors } = await readSafetensorsFile(GOLDEN);
    const get = (k: string) => tensors.get(k)!;
    const rand = rng(405);
    const weights: { name: string; t: Nf4Data; want: Float32Array }[] = [];
    for (const name of ["gate_proj_l0", "odd_100x170", "tiny_7x13"]) {
      const [out, inF] = get(`${name}.weight`).shape;
      const t: Nf4Data = {
        shape: [out, inF],
        n: out * inF,
        packed: get(`${name}.packed`).data as Uint8Array,
        qabsmax: get(`${name}.qabsmax`).data as Uint8Array,
        absmax2: get(`${name}.absmax2`).data as Float32Array,
        offset: (get(`${name}.offset`).data as Float32Array)[0],
      };
      weights.push({ name, t, want: get(`${name}.dequant`).data as Float32Array });
    }
    // Random codes with in % 8 == 0 but in % 64 != 0 (64-blocks cross rows), and 2304 (gemma-2-2b hidden).
    for (const [out, inF] of [[37, 520], [19, 2304]]) {
      const n = out * inF;
      const nb = Math.ceil(n / 64);
      const bytes = (k: number) => Uint8Array.from({ length: k }, () => Math.floor(rand() * 256));
      const t: Nf4Tensor = {
        shape: [out, inF],
        n,
        packed: bytes(Math.ceil(n / 2)),
        qabsmax: bytes(nb),
        absmax2: Float32Array.from({ length: Math.ceil(nb / 256) }, () => 0.001 + 0.05 * rand()),
        offset: Math.fround(0.01 + 0.03 * rand()),
      };
      weights.push({ name: `random ${out}x${inF}`, t, want: dequantizeNf4(t) });
    }
    const rec = new Recorder(gpu);
    const checks: Check[] = [];
    for (const { name, t, want } of weights) {
      const [out, inF] = t.shape;
      const w = uploadNf4(gpu, t, name);
      const xI = upload(gpu, "x", identity(inF));
      const dyI = upload(gpu, "dy", identity(out));
      for (const compute of computes(gpu)) {
        const wc = compute === "f16" ? roundF16(want) : want;
        // The identity fed in chunks of `rows` rows (cycling 1..8, so every row count is taken) through views:
        // x rows k0 .. k0+rows of I (offX = k0·in) give y rows k0 .. (offY = k0·out): y[k, n] = W[n, k].
        // Likewise dy = rows of I (out × out) give dx[k, :] = W[k, :].
        const y = upload(gpu, "y", new Float32Array(inF * out));
        const dx = upload(gpu, "dx", new Float32Array(out * inF));
        const paths = new Set<string>();
        for (let k0 = 0, rows = 1; k0 < inF; k0 += rows, rows = rows % 8 + 1) {
          const s: LinearShape = {
            tokens: Math.min(rows, inF - k0),
            inF,
            outF: out,
            compute,
            kernels,
            offX: k0 * inF,
            offY: k0 * out,
          };
          linearForward(rec, { x: xI, weight: w, y }, s);
          paths.add(linearForwardPath(gpu, s));
        }
        for (let k0 = 0, rows = 1; k0 < out; k0 += rows, rows = rows % 8 + 1) {
          linearBackward(rec, { dy: dyI, x: dx, weight: w, dx }, {
            tokens: Math.min(rows, out - k0),
            inF,
            outF: out,
            compute,
            kernels,
            offY: k0 * out,
            offX: k0 * inF,
          });
        }
        checks.push(async () => {
          const wt = new Float32Array(inF * out);
          for (let n = 0; n < out; n++) for (let k = 0; k < inF; k++) wt[k * out + n] = wc[n * inF + k];
          const what = `${name} ${compute} ${[...paths].join("/")}`;
          assertBitExact(await readF32(gpu, y, 0, inF * out), wt, `${what} forward`);
          assertBitExact(await readF32(gpu, dx, 0, out * inF), wc, `${what} dx`);
        });
      }
    }
    rec.submit();
    for (const c of checks) await c();
  });
}

// [tokens, out, in]: none a multiple of the 64×64×16 tile unless noted; in % 8 == 0 takes the word-per-thread
// path (72, 200: 64-blocks cross rows), other in take the per-element path; 2304 is gemma-2-2b's hidden size.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 13, 11],
  [65, 63, 72],
  [31, 67, 130],
  [70, 33, 129],
  [2, 130, 64],
  [129, 65, 200],
  [7, 40, 24],
  [64, 64, 16],
  [5, 96, 2304],
  [3, 2304, 40],
];

for (const kernels of KERNEL_VARIANTS) {
  const ragged =
    `[${kernels}] nf4 x·Wᵀ and dY·W vs float64 on ${SHAPES.length} ragged shapes, f32 and f16 operands`;
  // The register-blocked kernels read x / dY through kernels/lib/row8_*.wgsl: both variants here.
  testReductionsIf(kernels === "regblock", ragged, async () => {
    const gpu = await testGpu();
    const rand = rng(20240917);
    const rec = new Recorder(gpu);
    const checks: Check[] = [];
    for (const [M, out, inF] of SHAPES) {
      const { weight, deq } = nf4Weight(gpu, out, inF, rand, `w${out}x${inF}`);
      const x = randomArray(M * inF, rand);
      const dy = randomArray(M * out, rand);
      for (const compute of computes(gpu)) {
        // Every other case accumulates into a non-zero output (beta = 1).
        const acc = (M + out + (compute === "f16" ? 1 : 0)) % 2 === 1;
        const y0 = acc ? randomArray(M * out, rand) : new Float32Array(M * out);
        const dx0 = acc ? randomArray(M * inF, rand) : new Float32Array(M * inF);
        const s: LinearShape = { tokens: M, inF, outF: out, compute, kernels };
        const y = upload(gpu, "y", y0);
        const dx = upload(gpu, "dx", dx0);
        linearForward(rec, { x: upload(gpu, "x", x), weight, y, accumulate: acc }, s);
        linearBackward(rec, { dy: upload(gpu, "dy", dy), x: y, weight, dx, accumulateDx: acc }, s);
        const w = asOperand(deq, compute);
        const wantY = matmulRef(asOperand(x, compute), w, acc ? y0 : null, {
          M,
          N: out,
          K: inF,
          beta: acc ? 1 : 0,
        });
        const wantDx = matmulRef(asOperand(dy, compute), w, acc ? dx0 : null, {
          M,
          N: inF,
          K: out,
          transB: true,
          beta: acc ? 1 : 0,
        });
        const what = `M=${M} out=${out} in=${inF} ${compute}${acc ? " accumulate" : ""} ${
          linearForwardPath(gpu, s)
        }`;
        checks.push(async () => {
          // The operands are exactly those of the reference, so only f32 accumulation order differs.
          assertClose(await readF32(gpu, y, 0, M * out), wantY, { rel: 1e-5 }, `y ${what}`);
          assertClose(await readF32(gpu, dx, 0, M * inF), wantDx, { rel: 1e-5 }, `dx ${what}`);
        });
      }
    }
    rec.submit();
    for (const c of checks) await c();
  });
}

interface LoraCase {
  N: number;
  inF: number;
  outF: number;
  r: number;
  weight: "nf4" | "dense-f32" | "dense-f16";
  compute: ComputeType;
  dropout: boolean;
  /** x, dy scale (activations of realistic size). */
  scale?: number;
  kernels: KernelVariant;
}

/**
 * Records forward + backward of one LoRA case and returns the check against the float64 reference, which gets
 * the GPU-exported dropout mask. With f16 operands x, dy and W are made f16-exact first, so the reference's
 * single x feeds both the (f16) base product and the (f32) LoRA branch exactly as the GPU does.
 */
function loraCase(gpu: Gpu, rec: Recorder, c: LoraCase, rand: () => number, step = 7): Check {
  const { N, inF, outF, r } = c;
  const scaling = 32 / r;
  let x = randomArray(N * inF, rand, c.scale ?? 1);
  let dy = randomArray(N * outF, rand, c.scale ?? 1);
  const A = randomArray(r * inF, rand, 1 / Math.sqrt(inF));
  const B = randomArray(outF * r, rand, 0.1);
  let weight: LinearWeight;
  let W: Float32Array<ArrayBuffer>;
  if (c.weight === "nf4") {
    const q = nf4Weight(gpu, outF, inF, rand, "w");
    weight = q.weight;
    W = asOperand(q.deq, c.compute);
  } else {
    W = randomArray(outF * inF, rand, 0.05);
    if (c.weight === "dense-f16") W = roundF16(W);
    weight = {
      kind: "dense",
      shape: [outF, inF],
      buffer: upload(gpu, "W", c.weight === "dense-f16" ? toF16Array(W) : W),
      dtype: c.weight === "dense-f16" ? "f16" : "f32",
    } satisfies DenseWeight;
  }
  if (c.compute === "f16" && c.weight === "nf4") {
    x = roundF16(x);
    dy = roundF16(dy);
  }
  const dropout: DropoutSpec | null = c.dropout ? { p: 0.1, seed: 42, step, stream: 13 } : null;
  const lora = { A: upload(gpu, "A", A), B: upload(gpu, "B", B), r, scaling, dropout };
  const s: LinearShape = { tokens: N, inF, outF, compute: c.compute, kernels: c.kernels };
  const xb = upload(gpu, "x", x);
  const y = upload(gpu, "y", new Float32Array(N * outF));
  const u = upload(gpu, "u", new Float32Array(N * r));
  const du = upload(gpu, "du", new Float32Array(N * r));
  const dx = upload(gpu, "dx", new Float32Array(N * inF));
  const dA = upload(gpu, "dA", new Float32Array(r * inF));
  const dB = upload(gpu, "dB", new Float32Array(outF * r));
  const mask = upload(gpu, "mask", new Float32Array(N * inF));
  recordDropoutMask(rec, mask, N * inF, dropout);
  linearForward(rec, { x: xb, weight, lora, y, u }, s);
  linearBackward(rec, {
    dy: upload(gpu, "dy", dy),
    x: xb,
    weight,
    lora,
    u,
    du,
    grads: { dA, dB, accumulate: false },
    dx,
  }, s);
  const what = `${c.weight} ${c.compute} N=${N} in=${inF} out=${outF} r=${r}${c.dropout ? " dropout" : ""} ${
    c.weight === "nf4" ? linearForwardPath(gpu, s) : c.kernels
  }`;
  return async () => {
    const m = c.dropout ? await readF32(gpu, mask, 0, N * inF) : undefined;
    if (m) {
      let dropped = 0;
      for (const v of m) dropped += v === 0 ? 1 : 0;
      if (N * inF >= 2000 && Math.abs(dropped / m.length - 0.1) > 0.03) {
        throw new Error(`${what}: dropped fraction ${dropped / m.length}`);
      }
    }
    const f = loraLinearFwd(x, W, A, B, N, inF, outF, r, scaling, m);
    const b = loraLinearBwd(dy, x, W, A, B, N, inF, outF, r, scaling, m);
    const tol = { rel: 2e-5 };
    assertClose(await readF32(gpu, u, 0, N * r), f.u, tol, `u ${what}`);
    assertClose(await readF32(gpu, y, 0, N * outF), f.y, tol, `y ${what}`);
    assertClose(await readF32(gpu, dx, 0, N * inF), b.dx, tol, `dx ${what}`);
    assertClose(await readF32(gpu, dA, 0, r * inF), b.dA, tol, `dA ${what}`);
    assertClose(await readF32(gpu, dB, 0, outF * r), b.dB, tol, `dB ${what}`);
  };
}

for (const kernels of KERNEL_VARIANTS) {
  Deno.test(`[${kernels}] LoRA linear forward/backward vs float64 reference: NF4 and dense, with and without dropout`, async () => {
    const gpu = await testGpu();
    const rand = rng(77);
    const rec = new Recorder(gpu);
    const checks: Check[] = [];
    const shapes: [number, number, number, number][] = [
      [37, 72, 40, 16],
      [5, 130, 67, 8],
      [70, 64, 96, 16],
      [3, 13, 7, 4],
      [66, 200, 130, 20],
      // tokens ≤ 8: the small-M paths (nf4_matvec.wgsl / matvec.wgsl; regblock with TM = tokens)
      [1, 72, 40, 16],
      [8, 130, 67, 8],
    ];
    for (const [N, inF, outF, r] of shapes) {
      for (const dropout of [false, true]) {
        for (const compute of computes(gpu)) {
          checks.push(
            loraCase(gpu, rec, { N, inF, outF, r, weight: "nf4", compute, dropout, kernels }, rand),
          );
        }
        checks.push(
          loraCase(
            gpu,
            rec,
            { N, inF, outF, r, weight: "dense-f32", compute: "f32", dropout, kernels },
            rand,
          ),
        );
      }
    }
    // An f16 weight needs shader-f16; without it (MAIEUTIC_F16=0, GL adapters) it is refused naming it.
    const f16Weight: LoraCase = {
      N: 19,
      inF: 72,
      outF: 33,
      r: 16,
      weight: "dense-f16",
      compute: "f32",
      dropout: true,
      kernels,
    };
    if (gpu.f16) checks.push(loraCase(gpu, rec, f16Weight, rand));
    else await f16Only(gpu, () => void loraCase(gpu, new Recorder(gpu), f16Weight, rand));
    rec.submit();
    for (const c of checks) await c();
  });

  Deno.test(`[${kernels}] LoRA linear at gemma-2-2b q_proj size (2304 -> 2048, r 16) with dropout, f16 operands`, async () => {
    const gpu = await testGpu();
    const rand = rng(5);
    const rec = new Recorder(gpu);
    const check = loraCase(gpu, rec, {
      N: 24,
      inF: 2304,
      outF: 2048,
      r: 16,
      weight: "nf4",
      compute: gpu.f16 ? "f16" : "f32",
      dropout: true,
      kernels,
    }, rand);
    rec.submit();
    await check();
  });

  // N = 9 takes the 64-row tiles / 8-row register blocks; N = 2 the small-M paths.
  for (const N of [9, 2]) {
    Deno.test(`[${kernels}] f16 operands at realistic activation sizes stay finite (clamped to the f16 range, docs/ARCHITECTURE.md#numerics), ${N} rows`, async () => {
      const gpu = await testGpu();
      await f16Only(gpu, async () => {
        const rand = rng(11);
        const [inF, outF] = [2304, 96];
        // Gemma-2 residual-stream and MLP activations reach 1e2..1e4; a few beyond the f16 range.
        const x = randomArray(N * inF, rand, 300);
        for (let i = 0; i < 20; i++) x[Math.floor(rand() * x.length)] = (rand() < 0.5 ? -1 : 1) * 1.5e5;
        const dy = randomArray(N * outF, rand, 5e4);
        dy[3] = 9e4;
        const { weight, deq } = nf4Weight(gpu, outF, inF, rand, "w");
        const rec = new Recorder(gpu);
        const s: LinearShape = { tokens: N, inF, outF, compute: "f16", kernels };
        const y = upload(gpu, "y", new Float32Array(N * outF));
        const dx = upload(gpu, "dx", new Float32Array(N * inF));
        linearForward(rec, { x: upload(gpu, "x", x), weight, y }, s);
        linearBackward(rec, { dy: upload(gpu, "dy", dy), x: y, weight, dx }, s);
        rec.submit();
        const gy = await readF32(gpu, y, 0, N * outF);
        const gdx = await readF32(gpu, dx, 0, N * inF);
        assertFinite(gy, "y");
        assertFinite(gdx, "dx");
        const w = roundF16(deq);
        assertClose(gy, matmulRef(roundF16(x), w, null, { M: N, N: outF, K: inF }), { rel: 1e-5 }, "y");
        assertClose(
          gdx,
          matmulRef(roundF16(dy), w, null, { M: N, N: inF, K: outF, transB: true }),
          { rel: 1e-5 },
          "dx",
        );
      });
    });
  }

  Deno.test(`[${kernels}] LoRA gradients accumulate across micro-batches; dx accumulates across projections sharing x`, async () => {
    const gpu = await testGpu();
    const rand = rng(3);
    const [N, inF, outF, r] = [21, 72, 50, 16];
    const scaling = 2;
    const { weight, deq } = nf4Weight(gpu, outF, inF, rand, "w");
    const A = randomArray(r * inF, rand, 1 / Math.sqrt(inF));
    const B = randomArray(outF * r, rand, 0.1);
    const rec = new Recorder(gpu);
    const s: LinearShape = { tokens: N, inF, outF, compute: "f32", kernels };
    const dA = upload(gpu, "dA", new Float32Array(r * inF));
    const dB = upload(gpu, "dB", new Float32Array(outF * r));
    const dx = upload(gpu, "dx", new Float32Array(N * inF));
    const masks: GPUBuffer[] = [];
    const data: { x: Float32Array; dy: Float32Array }[] = [];
    for (let step = 0; step < 3; step++) {
      const x = randomArray(N * inF, rand);
      const dy = randomArray(N * outF, rand);
      data.push({ x, dy });
      const dropout: DropoutSpec = { p: 0.25, seed: 1, step, stream: 2 };
      const lora = { A: upload(gpu, "A", A), B: upload(gpu, "B", B), r, scaling, dropout };
      const xb = upload(gpu, "x", x);
      const u = upload(gpu, "u", new Float32Array(N * r));
      const du = upload(gpu, "du", new Float32Array(N * r));
      const mask = upload(gpu, "mask", new Float32Array(N * inF));
      masks.push(mask);
      recordDropoutMask(rec, mask, N * inF, dropout);
      linearForward(rec, { x: xb, weight, lora, y: upload(gpu, "y", new Float32Array(N * outF)), u }, s);
      // The first micro-batch overwrites (no clear needed), later ones add; dx adds over all three.
      linearBackward(rec, {
        dy: upload(gpu, "dy", dy),
        x: xb,
        weight,
        lora,
        u,
        du,
        grads: { dA, dB, accumulate: step > 0 },
        dx,
        accumulateDx: step > 0,
      }, s);
    }
    rec.submit();
    const wantA = new Float64Array(r * inF);
    const wantB = new Float64Array(outF * r);
    const wantDx = new Float64Array(N * inF);
    for (let step = 0; step < 3; step++) {
      const m = await readF32(gpu, masks[step], 0, N * inF);
      const g = loraLinearBwd(data[step].dy, data[step].x, deq, A, B, N, inF, outF, r, scaling, m);
      g.dA.forEach((v, i) => wantA[i] += v);
      g.dB.forEach((v, i) => wantB[i] += v);
      g.dx.forEach((v, i) => wantDx[i] += v);
    }
    assertClose(await readF32(gpu, dA, 0, r * inF), wantA, { rel: 2e-5 }, "dA accumulated");
    assertClose(await readF32(gpu, dB, 0, outF * r), wantB, { rel: 2e-5 }, "dB accumulated");
    assertClose(await readF32(gpu, dx, 0, N * inF), wantDx, { rel: 2e-5 }, "dx accumulated");
  });

  // N = 13 as before; N = 3 the small-M paths (decode writes k and v into the cache through such views).
  for (const N of [13, 3]) {
    Deno.test(`[${kernels}] strided views: q and k written side by side into one buffer, x read from a wider buffer, ${N} rows`, async () => {
      const gpu = await testGpu();
      const rand = rng(8);
      const [inF, qOut, kOut, r] = [64, 48, 24, 8];
      const ld = qOut + kOut;
      const xWide = randomArray(N * (inF + 5) + 3, rand);
      const x = new Float32Array(N * inF);
      for (let m = 0; m < N; m++) for (let k = 0; k < inF; k++) x[m * inF + k] = xWide[3 + m * (inF + 5) + k];
      const qw = nf4Weight(gpu, qOut, inF, rand, "q");
      const kw = nf4Weight(gpu, kOut, inF, rand, "k");
      const A = randomArray(r * inF, rand, 0.1);
      const B = randomArray(kOut * r, rand, 0.1);
      const rec = new Recorder(gpu);
      const xb = upload(gpu, "x", xWide);
      const y = upload(gpu, "qk", new Float32Array(N * ld));
      const u = upload(gpu, "u", new Float32Array(N * r));
      const view = { ldx: inF + 5, offX: 3, ldy: ld, compute: "f32" as const, kernels };
      linearForward(rec, { x: xb, weight: qw.weight, y }, { tokens: N, inF, outF: qOut, ...view });
      const lora = { A: upload(gpu, "A", A), B: upload(gpu, "B", B), r, scaling: 2 };
      linearForward(rec, { x: xb, weight: kw.weight, lora, y, u }, {
        tokens: N,
        inF,
        outF: kOut,
        ...view,
        offY: qOut,
      });
      rec.submit();
      const got = await readF32(gpu, y, 0, N * ld);
      const q =
        loraLinearFwd(x, qw.deq, new Float32Array(r * inF), new Float32Array(qOut * r), N, inF, qOut, r, 0).y;
      const k = loraLinearFwd(x, kw.deq, A, B, N, inF, kOut, r, 2).y;
      const want = new Float64Array(N * ld);
      for (let m = 0; m < N; m++) {
        for (let j = 0; j < qOut; j++) want[m * ld + j] = q[m * qOut + j];
        for (let j = 0; j < kOut; j++) want[m * ld + qOut + j] = k[m * kOut + j];
      }
      assertClose(got, want, { rel: 1e-5 }, "q|k side by side");
    });
  }
}
