/**
 * HTTP for the Hub client: GET with manual redirects (the token goes only to the origin it was meant for,
 * as huggingface_hub does for its relative redirects), retries with exponential backoff on 429 / 5xx /
 * network errors (honouring Retry-After), and HttpRangeSource: a safetensors ByteSource over Range requests
 * that resumes at the exact byte when a connection drops mid-body.
 *
 * Secrets: the token is only ever placed in the Authorization header. URLs in messages are shown without
 * their query string (signed CDN URLs carry credentials there).
 */
import type { ByteSource } from "../safetensors/source.ts";
import { SafetensorsError } from "../safetensors/header.ts";

export interface HttpOptions {
  /** Bearer token for the origin of the first URL (never sent to other origins). */
  token?: string;
  /** Attempts after the first one, per request (default 5). */
  retries?: number;
  /** First backoff delay in ms, doubled per attempt (default 500). */
  retryBaseMs?: number;
  /** Backoff cap in ms (default 30000). */
  retryMaxMs?: number;
  /** Told about each retry (for a one-line notice on stderr). */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
  /** Test hook / alternative transport. */
  fetch?: typeof fetch;
}

export class HttpStatusError extends Error {
  override name = "HttpStatusError";
  constructor(
    readonly url: string,
    readonly status: number,
    /** The Hub's X-Error-Code header (GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound). */
    readonly errorCode: string | undefined,
    readonly serverMessage: string | undefined,
  ) {
    super(
      `GET ${url}: HTTP ${status}${errorCode ? ` (${errorCode})` : ""}${
        serverMessage ? `: ${serverMessage}` : ""
      }`,
    );
  }
}

/** A request that kept failing at the network level or with 429/5xx after all retries. */
export class HttpUnavailableError extends Error {
  override name = "HttpUnavailableError";
}

/** The URL without query or fragment, for messages. */
export function redactUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return String(url).replace(/[?#].*$/, "");
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function backoffMs(attempt: number, opts: HttpOptions): number {
  const base = opts.retryBaseMs ?? 500;
  return Math.min(opts.retryMaxMs ?? 30_000, base * 2 ** Math.max(0, attempt - 1));
}

function retryAfterMs(res: Response): number | undefined {
  const v = res.headers.get("retry-after");
  if (v === null) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status <= 599);
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * One GET with redirects followed by hand. Returns the final response, which is 2xx or a non-retryable
 * error status (the caller maps it); throws HttpUnavailableError after the retries are spent.
 */
export async function httpGet(
  url: string,
  opts: HttpOptions,
  headers: Record<string, string> = {},
): Promise<{ res: Response; finalUrl: string }> {
  const retries = opts.retries ?? 5;
  const doFetch = opts.fetch ?? fetch;
  const origin = new URL(url).origin;
  let lastReason = "";
  let lastDelay: number | undefined;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const delayMs = lastDelay ?? backoffMs(attempt, opts);
      opts.onRetry?.({ url: redactUrl(url), attempt, delayMs, reason: lastReason });
      await sleep(delayMs);
    }
    lastDelay = undefined;
    let current = url;
    try {
      for (let hop = 0; hop <= 10; hop++) {
        const h: Record<string, string> = { ...headers };
        if (opts.token && new URL(current).origin === origin) h.authorization = `Bearer ${opts.token}`;
        const res = await doFetch(current, { headers: h, redirect: "manual" });
        if (REDIRECTS.has(res.status) && res.headers.get("location")) {
          await res.body?.cancel();
          current = new URL(res.headers.get("location")!, current).toString();
          if (hop === 10) throw new HttpUnavailableError(`GET ${redactUrl(url)}: more than 10 redirects`);
          continue;
        }
        if (isRetryableStatus(res.status)) {
          lastReason = `HTTP ${res.status}`;
          lastDelay = retryAfterMs(res);
          if (lastDelay !== undefined) lastDelay = Math.min(lastDelay, opts.retryMaxMs ?? 30_000);
          await res.body?.cancel();
          break;
        }
        return { res, finalUrl: current };
      }
    } catch (e) {
      if (e instanceof HttpUnavailableError) throw e;
      lastReason = (e as Error).message;
    }
  }
  throw new HttpUnavailableError(
    `GET ${redactUrl(url)} failed after ${retries + 1} attempts (${lastReason})`,
  );
}

/** Reads the Hub's error details from a non-2xx response and throws HttpStatusError. */
export async function throwStatus(res: Response, url: string): Promise<never> {
  let message: string | undefined;
  try {
    const text = (await res.text()).slice(0, 2000);
    try {
      const j = JSON.parse(text);
      if (j && typeof j.error === "string") message = j.error;
    } catch {
      message = text.trim().split("\n")[0]?.slice(0, 200) || undefined;
    }
  } catch { /* body unavailable */ }
  throw new HttpStatusError(
    redactUrl(url),
    res.status,
    res.headers.get("x-error-code") ?? undefined,
    message,
  );
}

/** Parses `Content-Range: bytes a-b/total`, or the unsatisfied-range form of a 416 (start = end = -1). */
export function parseContentRange(
  v: string | null,
): { start: number; end: number; total?: number } | undefined {
  const m = v && /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return undefined;
  return {
    start: m[1] === undefined ? -1 : Number(m[1]),
    end: m[2] === undefined ? -1 : Number(m[2]),
    total: m[3] === "*" ? undefined : Number(m[3]),
  };
}

export interface RangeSourceOptions extends HttpOptions {
  /** Size when already known (e.g. from the Hub's X-Linked-Size); otherwise read from Content-Range. */
  size?: number;
  /** Called with every chunk of body bytes received (progress). */
  onBytes?: (n: number) => void;
  /** Name for messages (defaults to the redacted URL). */
  name?: string;
}

/**
 * A remote file read with HTTP Range requests, one request per read. A body that breaks off mid-way is
 * resumed from the next byte (counted against `retries` only while no progress is made).
 */
export class HttpRangeSource implements ByteSource {
  readonly name: string;
  #size: number | undefined;
  /** Where redirects led last time (signed CDN URL); dropped again if it stops working. */
  #resolved: string | undefined;

  constructor(readonly url: string, readonly opts: RangeSourceOptions = {}) {
    this.name = opts.name ?? redactUrl(url);
    this.#size = opts.size;
  }

  async size(): Promise<number> {
    if (this.#size === undefined) {
      await this.read(0, 1).catch((e) => {
        if (this.#size === 0) return;
        throw e;
      });
    }
    if (this.#size === undefined) {
      throw new SafetensorsError(`${this.name}: the server did not report the file size`);
    }
    return this.#size;
  }

  async #get(range: string): Promise<Response> {
    if (this.#resolved) {
      const { res, finalUrl } = await httpGet(this.#resolved, { ...this.opts, token: undefined }, { range });
      if (res.ok || res.status === 416) {
        this.#resolved = finalUrl;
        return res;
      }
      await res.body?.cancel();
      this.#resolved = undefined; // expired signature or similar: resolve again from the original URL
    }
    const { res, finalUrl } = await httpGet(this.url, this.opts, { range });
    if (res.ok && new URL(finalUrl).origin !== new URL(this.url).origin) this.#resolved = finalUrl;
    return res;
  }

  async read(offset: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    const out = new Uint8Array(length);
    if (length === 0) return out;
    const retries = this.opts.retries ?? 5;
    let got = 0;
    let failures = 0;
    while (got < length) {
      const start = offset + got;
      const end = offset + length - 1;
      const res = await this.#get(`bytes=${start}-${end}`);
      if (res.status === 416) {
        await res.body?.cancel();
        const cr = parseContentRange(res.headers.get("content-range"));
        if (cr?.total !== undefined) this.#size = cr.total;
        throw new SafetensorsError(
          `${this.name}: bytes ${start}-${end} are past the end of the file${
            this.#size !== undefined ? ` (${this.#size} bytes)` : ""
          } (truncated?)`,
        );
      }
      if (!res.ok) await throwStatus(res, this.url);
      let skip = 0;
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get("content-range"));
        if (!cr || cr.start !== start) {
          await res.body?.cancel();
          throw new SafetensorsError(
            `${this.name}: server answered range ${start}-${end} with "${res.headers.get("content-range")}"`,
          );
        }
        if (cr.total !== undefined) this.#size = cr.total;
      } else {
        // 200: the server ignored Range and sends the whole file.
        const cl = res.headers.get("content-length");
        if (cl !== null) this.#size = Number(cl);
        skip = start;
      }
      if (this.#size !== undefined && offset + length > this.#size) {
        await res.body?.cancel();
        throw new SafetensorsError(
          `${this.name}: bytes ${offset}-${end} are past the end of the file (${this.#size} bytes; truncated?)`,
        );
      }
      const before = got;
      let broken: Error | undefined;
      const reader = res.body!.getReader();
      try {
        while (got < length) {
          const { done, value } = await reader.read();
          if (done) break;
          let chunk = value;
          if (skip > 0) {
            const s = Math.min(skip, chunk.byteLength);
            skip -= s;
            chunk = chunk.subarray(s);
          }
          const take = Math.min(chunk.byteLength, length - got);
          out.set(chunk.subarray(0, take), got);
          got += take;
          if (take) this.opts.onBytes?.(take);
        }
      } catch (e) {
        broken = e as Error;
      } finally {
        if (got >= length) await reader.cancel().catch(() => {});
        reader.releaseLock();
      }
      if (got >= length) break;
      // The body ended or broke early: resume at the next byte.
      failures = got > before ? 1 : failures + 1;
      if (failures > retries) {
        throw new HttpUnavailableError(
          `${this.name}: connection dropped ${failures} times at byte ${offset + got} without progress (${
            broken?.message ?? "body ended early"
          })`,
        );
      }
      const delayMs = backoffMs(failures, this.opts);
      this.opts.onRetry?.({
        url: this.name,
        attempt: failures,
        delayMs,
        reason: `connection dropped at byte ${offset + got}, resuming`,
      });
      await sleep(delayMs);
    }
    return out;
  }

  close(): void {}
}
