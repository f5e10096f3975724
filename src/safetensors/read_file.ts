/** Reading a local safetensors file, whole or one tensor at a time (only that tensor's bytes are read). */
import { type Header, headerLength, parseHeader, SafetensorsError } from "./header.ts";
import { decodeTensor, type Tensor } from "./decode.ts";

export async function readHeaderFile(path: string): Promise<Header> {
  using f = await Deno.open(path, { read: true });
  const size = (await f.stat()).size;
  const first = await readExactly(f, 0, 8, path);
  const n = headerLength(first, path);
  if (8 + n > size) throw new SafetensorsError(`${path}: header of ${n} bytes exceeds the file size ${size}`);
  return parseHeader(await readExactly(f, 8, n, path), path, size);
}

async function readExactly(
  f: Deno.FsFile,
  pos: number,
  n: number,
  path: string,
): Promise<Uint8Array<ArrayBuffer>> {
  await f.seek(pos, Deno.SeekMode.Start);
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await f.read(out.subarray(got));
    if (r === null) throw new SafetensorsError(`${path}: unexpected end of file at byte ${pos + got}`);
    got += r;
  }
  return out;
}

/** Reads one tensor from a local file. */
export async function readTensorFile(path: string, header: Header, name: string): Promise<Tensor> {
  const info = header.tensors[name];
  if (!info) throw new SafetensorsError(`${path}: no tensor named "${name}"`);
  using f = await Deno.open(path, { read: true });
  const [b, e] = info.data_offsets;
  const bytes = await readExactly(f, header.dataStart + b, e - b, path);
  return { dtype: info.dtype, shape: info.shape, data: decodeTensor(info.dtype, bytes) };
}

/** Reads every tensor of a (small) local file; for tests, fixtures and our own adapter/optimizer files. */
export async function readSafetensorsFile(
  path: string,
): Promise<{ tensors: Map<string, Tensor>; metadata: Record<string, string> }> {
  const bytes = await Deno.readFile(path);
  const n = headerLength(bytes.subarray(0, 8), path);
  if (8 + n > bytes.byteLength) throw new SafetensorsError(`${path}: header exceeds the file size`);
  const header = parseHeader(bytes.subarray(8, 8 + n), path, bytes.byteLength);
  const tensors = new Map<string, Tensor>();
  for (const [name, info] of Object.entries(header.tensors)) {
    const [b, e] = info.data_offsets;
    tensors.set(name, {
      dtype: info.dtype,
      shape: info.shape,
      data: decodeTensor(info.dtype, bytes.subarray(header.dataStart + b, header.dataStart + e)),
    });
  }
  return { tensors, metadata: header.metadata };
}
