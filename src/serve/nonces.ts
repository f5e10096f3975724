/**
 * Signatures already accepted, kept on disk so a signed request cannot be replayed after a restart (issue
 * #18): `<jobs-dir>/signatures.log`, one `<expiry ms> <mac>` line per accepted signature, appended and fsynced
 * before the request is acted on. A signature is fresh for 5 minutes either side of the clock (sign.ts), so
 * each is remembered for 11 minutes; expired lines are dropped when the file is compacted (on open and when it
 * has grown to twice its live entries). When `maxEntries` live signatures are held, new ones are refused (503)
 * rather than an old one forgotten: only holders of the signing secret can fill it.
 */
import { join } from "node:path";
import { writeDurable } from "./store.ts";

export const NONCE_TTL_MS = 11 * 60_000;

export type Claim = "ok" | "replay" | "full";

export class NonceStore {
  private seen = new Map<string, number>();
  private lines = 0;
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly dir: string,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  static async open(
    dir: string,
    opts: { maxEntries?: number; now?: () => number } = {},
  ): Promise<NonceStore> {
    await Deno.mkdir(dir, { recursive: true });
    const s = new NonceStore(
      join(dir, "signatures.log"),
      dir,
      opts.maxEntries ?? 100_000,
      opts.now ?? Date.now,
    );
    let text = "";
    try {
      text = await Deno.readTextFile(s.path);
    } catch { /* none yet */ }
    const t = s.now();
    for (const line of text.split("\n")) {
      const m = line.match(/^(\d+) ([0-9a-f]{64})$/);
      if (m && Number(m[1]) > t) s.seen.set(m[2], Number(m[1]));
    }
    await s.compact();
    return s;
  }

  /** Records `mac` durably unless it was seen; resolves once it is on disk. */
  claim(mac: string): Promise<Claim> {
    const t = this.now();
    const prev = this.seen.get(mac);
    if (prev !== undefined && prev > t) return Promise.resolve("replay");
    if (this.seen.size >= this.maxEntries) {
      for (const [k, exp] of this.seen) if (exp <= t) this.seen.delete(k);
      if (this.seen.size >= this.maxEntries) return Promise.resolve("full");
    }
    const exp = t + NONCE_TTL_MS;
    this.seen.set(mac, exp);
    const write = this.chain.catch(() => {}).then(async () => {
      const f = await Deno.open(this.path, { append: true, create: true, mode: 0o600 });
      try {
        const data = new TextEncoder().encode(`${exp} ${mac}\n`);
        let off = 0;
        while (off < data.length) off += await f.write(data.subarray(off));
        await f.syncData();
      } finally {
        f.close();
      }
      if (++this.lines > 1000 && this.lines > 2 * this.seen.size) await this.compact();
    });
    this.chain = write;
    return write.then(() => "ok" as const, (e) => {
      this.seen.delete(mac);
      throw e;
    });
  }

  private async compact(): Promise<void> {
    const t = this.now();
    for (const [k, exp] of this.seen) if (exp <= t) this.seen.delete(k);
    const text = [...this.seen].map(([k, exp]) => `${exp} ${k}\n`).join("");
    await writeDurable(this.path, text, this.dir);
    this.lines = this.seen.size;
  }
}
