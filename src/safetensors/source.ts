/**
 * Random-access byte sources for the streaming safetensors reader: a local file, bytes in memory, or (in
 * src/hub/http.ts) an HTTP resource read with Range requests. Only the requested bytes are read.
 */
import { SafetensorsError } from "./header.ts";

export interface ByteSource {
  /** For messages: a path or a URL (never with credentials). */
  readonly name: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /** Exactly `length` bytes starting at `offset`; throws SafetensorsError when the source ends early. */
  read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>>;
  /** Releases handles/connections; further reads reopen them. */
  close(): void;
}

/** A local file; the handle is opened on first use and kept until close(). */
export class FileSource implements ByteSource {
  #file: Deno.FsFile | undefined;
  #size: number | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  constructor(readonly path: string) {}
  get name(): string {
    return this.path;
  }

  async #open(): Promise<Deno.FsFile> {
    if (!this.#file) {
      try {
        this.#file = await Deno.open(this.path, { read: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) throw new SafetensorsError(`${this.path}: file not found`);
        throw e;
      }
    }
    return this.#file;
  }

  async size(): Promise<number> {
    if (this.#size === undefined) this.#size = (await (await this.#open()).stat()).size;
    return this.#size;
  }

  /** Reads are serialized: seek + read on one handle must not interleave. */
  read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    const p = this.#queue.then(() => this.#read(offset, length));
    this.#queue = p.catch(() => {});
    return p;
  }

  async #read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    const f = await this.#open();
    await f.seek(offset, Deno.SeekMode.Start);
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const r = await f.read(out.subarray(got));
      if (r === null) {
        throw new SafetensorsError(
          `${this.path}: unexpected end of file at byte ${
            offset + got
          } (wanted ${length} bytes from ${offset}; truncated?)`,
        );
      }
      got += r;
    }
    return out;
  }

  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/** Bytes already in memory (tests, small embedded files). */
export class MemorySource implements ByteSource {
  constructor(readonly bytes: Uint8Array, readonly name = "<memory>") {}
  size(): Promise<number> {
    return Promise.resolve(this.bytes.byteLength);
  }
  read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    if (offset + length > this.bytes.byteLength) {
      return Promise.reject(
        new SafetensorsError(
          `${this.name}: read of ${length} bytes at ${offset} is past the end (${this.bytes.byteLength})`,
        ),
      );
    }
    return Promise.resolve(this.bytes.slice(offset, offset + length));
  }
  close(): void {}
}
