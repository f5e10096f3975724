/**
 * Host side of kernels/nf4_quantize.wgsl: NF4 + double quant on the GPU, bit for bit with the CPU reference
 * (src/quant/nf4.ts) and so with bitsandbytes. The buffers hold exactly the Nf4Tensor layout (packed and
 * qabsmax bytes as little-endian u32 words), so the NF4 matmul reads them as they are.
 *
 * The double-quant offset is `mean(absmax)`. bitsandbytes takes torch's float32 mean; the goldens (and
 * `absmaxOffset`) use the float64 mean rounded to float32. For exact results `quantizeNf4Gpu` reads absmax
 * back and computes the offset on the CPU (or takes it from the caller); `recordAbsmaxMean` computes it on
 * the GPU instead (within about an ulp), for engine paths that must not wait for a readback.
 */
import source from "../../kernels/nf4_quantize.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { createBuffer, upload } from "../gpu/buffers.ts";
import { defineKernel, getKernel, type KernelOf } from "../gpu/kernel.ts";
import { Recorder } from "../gpu/recorder.ts";
import { readBuffer } from "../gpu/readback.ts";
import { absmaxOffset, DQ_BLOCK, DYNAMIC_MAP, NF4_BLOCK, type Nf4Tensor } from "./nf4.ts";

const WG = 256;
/** Elements per quantize chunk step: keeps the binding offsets of w, packed and absmax 256-byte aligned. */
const CHUNK_ALIGN = 4096;

export interface Nf4Sizes {
  n: number;
  /** ceil(n/2) bytes of packed codes. */
  packedBytes: number;
  /** 64-blocks (= absmax / qabsmax entries). */
  nb: number;
  /** 256-blocks of absmax (= absmax2 entries). */
  nb2: number;
}

export function nf4Sizes(n: number): Nf4Sizes {
  const nb = Math.ceil(n / NF4_BLOCK);
  return { n, packedBytes: Math.ceil(n / 2), nb, nb2: Math.ceil(nb / DQ_BLOCK) };
}

/** Device buffers of one NF4 tensor. `absmax` is the raw per-block absmax (scratch after double quant). */
export interface Nf4GpuBuffers {
  packed: GPUBuffer;
  absmax: GPUBuffer;
  offset: GPUBuffer;
  qabsmax: GPUBuffer;
  absmax2: GPUBuffer;
}

/** Allocates the buffers for `n` elements (sizes rounded up to whole u32 words). */
export function createNf4Buffers(gpu: Gpu, n: number, label = "nf4"): Nf4GpuBuffers {
  const s = nf4Sizes(n);
  return {
    packed: createBuffer(gpu, `${label}.packed`, Math.ceil(n / 8) * 4),
    absmax: createBuffer(gpu, `${label}.absmax`, s.nb * 4),
    offset: createBuffer(gpu, `${label}.offset`, 4),
    qabsmax: createBuffer(gpu, `${label}.qabsmax`, Math.ceil(s.nb / 4) * 4),
    absmax2: createBuffer(gpu, `${label}.absmax2`, s.nb2 * 4),
  };
}

const NF4_QUANTIZE = defineKernel({
  file: "nf4_quantize.wgsl",
  code: source,
  params: { n: "u32", nb: "u32" },
});

function kernel(gpu: Gpu, entry: "quantize" | "mean" | "dq" | "recip"): KernelOf<typeof NF4_QUANTIZE> {
  return getKernel(gpu, { ...NF4_QUANTIZE, entry });
}

const mapBuffers = new WeakMap<GPUDevice, GPUBuffer>();
/** The 256-entry dynamic map, uploaded once per device. */
function dynamicMapBuffer(gpu: Gpu): GPUBuffer {
  let b = mapBuffers.get(gpu.device);
  if (!b) mapBuffers.set(gpu.device, b = upload(gpu, "nf4.dynamic_map", DYNAMIC_MAP));
  return b;
}

/**
 * Records the NF4 pass: raw absmax per 64-block and packed codes of `w` (f32, `n` elements). Tensors whose
 * f32 binding would exceed maxStorageBufferBindingSize are processed in aligned chunks.
 */
export function recordNf4Quantize(
  rec: Recorder,
  w: GPUBuffer,
  bufs: Nf4GpuBuffers,
  n: number,
  /** Elements per dispatch (a multiple of 4096); defaults to what one binding allows. For tests. */
  chunkElems?: number,
): void {
  if (n <= 0) throw new RangeError("recordNf4Quantize: empty tensor");
  const k = kernel(rec.gpu, "quantize");
  const maxElems = chunkElems ??
    Math.floor(rec.gpu.limits.maxStorageBufferBindingSize / 4 / CHUNK_ALIGN) * CHUNK_ALIGN;
  if (maxElems <= 0 || maxElems % CHUNK_ALIGN) {
    throw new RangeError(`chunk of ${maxElems} elements is not a multiple of 4096`);
  }
  for (let start = 0; start < n; start += maxElems) {
    const cn = Math.min(maxElems, n - start);
    const nb = Math.ceil(cn / NF4_BLOCK);
    rec.dispatch(
      k,
      [
        { buffer: w, offset: start * 4, size: cn * 4 },
        { buffer: bufs.packed, offset: start / 2, size: Math.ceil(cn / 8) * 4 },
        { buffer: bufs.absmax, offset: (start / NF4_BLOCK) * 4, size: nb * 4 },
      ],
      { n: cn, nb },
      Math.ceil(cn / WG),
    );
  }
}

/** Records offset[0] = float32 mean of absmax, computed on the GPU (see the module note on exactness). */
export function recordAbsmaxMean(rec: Recorder, bufs: Nf4GpuBuffers, n: number): void {
  const { nb } = nf4Sizes(n);
  rec.dispatch(kernel(rec.gpu, "mean"), [null, null, bufs.absmax, bufs.offset], { n, nb }, 1);
}

/** Records the double quant of absmax with the offset in `bufs.offset` (written by the host or the GPU). */
export function recordDoubleQuant(rec: Recorder, bufs: Nf4GpuBuffers, n: number): void {
  const { nb, nb2 } = nf4Sizes(n);
  rec.dispatch(
    kernel(rec.gpu, "dq"),
    [null, null, bufs.absmax, bufs.offset, bufs.qabsmax, bufs.absmax2, dynamicMapBuffer(rec.gpu)],
    { n, nb },
    nb2,
  );
}

/** Writes a host-computed offset into `bufs.offset` (queue order puts it before later submissions). */
export function writeOffset(gpu: Gpu, bufs: Nf4GpuBuffers, offset: number): void {
  gpu.device.queue.writeBuffer(bufs.offset, 0, new Float32Array([offset]));
}

/** Reads an Nf4Tensor back from its buffers (`offset` as the host knows it, or read from the device). */
export async function readNf4(
  gpu: Gpu,
  bufs: Nf4GpuBuffers,
  shape: number[],
  offset?: number,
): Promise<Nf4Tensor> {
  const n = shape.reduce((a, d) => a * d, 1);
  const s = nf4Sizes(n);
  const packed = new Uint8Array(
    await readBuffer(gpu, bufs.packed, 0, Math.ceil(s.packedBytes / 4) * 4),
    0,
    s.packedBytes,
  )
    .slice();
  const qabsmax = new Uint8Array(await readBuffer(gpu, bufs.qabsmax, 0, Math.ceil(s.nb / 4) * 4), 0, s.nb)
    .slice();
  const absmax2 = new Float32Array(await readBuffer(gpu, bufs.absmax2, 0, s.nb2 * 4));
  const off = offset ?? new Float32Array(await readBuffer(gpu, bufs.offset, 0, 4))[0];
  return { shape: [...shape], n, packed, qabsmax, absmax2, offset: off };
}

export function destroyNf4Buffers(bufs: Nf4GpuBuffers): void {
  for (const b of Object.values(bufs)) b.destroy();
}

/**
 * NF4-quantizes a float32 weight on the GPU and returns it on the host, bit for bit equal to
 * `quantizeNf4(w, shape)`. Without `opts.offset` the raw absmax is read back once to take its float64 mean.
 */
export async function quantizeNf4Gpu(
  gpu: Gpu,
  w: Float32Array | GPUBuffer,
  shape: number[],
  opts: { offset?: number } = {},
): Promise<Nf4Tensor> {
  const n = shape.reduce((a, d) => a * d, 1);
  if (w instanceof Float32Array && w.length !== n) {
    throw new Error(`quantizeNf4Gpu: shape ${JSON.stringify(shape)} has ${n} elements, data ${w.length}`);
  }
  const wb = w instanceof Float32Array ? upload(gpu, "nf4.w", w) : w;
  const bufs = createNf4Buffers(gpu, n);
  try {
    const rec = new Recorder(gpu, { label: "nf4-quantize" });
    recordNf4Quantize(rec, wb, bufs, n);
    let offset = opts.offset;
    if (offset === undefined) {
      rec.submit();
      const absmax = new Float32Array(await readBuffer(gpu, bufs.absmax, 0, nf4Sizes(n).nb * 4));
      offset = absmaxOffset(absmax);
      writeOffset(gpu, bufs, offset);
      const rec2 = new Recorder(gpu, { label: "nf4-double-quant" });
      recordDoubleQuant(rec2, bufs, n);
      rec2.submit();
    } else {
      writeOffset(gpu, bufs, offset);
      recordDoubleQuant(rec, bufs, n);
      rec.submit();
    }
    return await readNf4(gpu, bufs, shape, offset);
  } finally {
    destroyNf4Buffers(bufs);
    if (w instanceof Float32Array) wb.destroy();
  }
}

/** Test hook: the kernel's integer reciprocal for each value (bits of the f32 results). */
export async function gpuReciprocals(gpu: Gpu, x: Float32Array): Promise<Float32Array> {
  const xb = upload(gpu, "recip.x", x);
  const out = createBuffer(gpu, "recip.out", x.length * 4);
  const rec = new Recorder(gpu);
  rec.dispatch(kernel(gpu, "recip"), [xb, out], { n: x.length, nb: 0 }, Math.ceil(x.length / WG));
  rec.submit();
  const r = new Float32Array(await readBuffer(gpu, out, 0, x.length * 4));
  xb.destroy();
  out.destroy();
  return r;
}
