/**
 * Request signing shared by `maieutic serve` and the Deno Deploy trigger (deploy/). Web Crypto only, no
 * imports, so deploy/ can use it as is.
 *
 * Header: `X-Maieutic-Signature: t=<unix seconds>,n=<hex nonce>,v1=<hex HMAC-SHA256>` over
 * `"<t>\n<nonce>\n<METHOD>\n<path+query>\n<body>"` with the shared secret (MAIEUTIC_SIGNING_SECRET). The
 * method and the path are covered so a signature made for one request cannot be replayed against another
 * endpoint; the timestamp must lie within 5 minutes of the receiver's clock (either side); the random nonce
 * makes two identical requests in the same second distinct, so a receiver can refuse replays by remembering
 * the signatures it accepted in the last 10 minutes.
 */

export const SIGNATURE_HEADER = "x-maieutic-signature";
export const MAX_SKEW_S = 300;

const enc = new TextEncoder();

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function hmacKey(secret: string): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

function message(
  t: number,
  nonce: string,
  method: string,
  path: string,
  body: string | Uint8Array,
): Uint8Array<ArrayBuffer> {
  const head = enc.encode(`${t}\n${nonce}\n${method.toUpperCase()}\n${path}\n`);
  const b = typeof body === "string" ? enc.encode(body) : body;
  const out = new Uint8Array(head.length + b.length);
  out.set(head);
  out.set(b, head.length);
  return out;
}

export interface SignInput {
  method: string;
  /** pathname + search, as the receiver sees it (e.g. "/v1/eval-jobs" or "/callback?x=1"). */
  path: string;
  body: string | Uint8Array;
  /** unix seconds; default now */
  timestamp?: number;
  /** hex, 16 to 64 digits; default 16 random bytes */
  nonce?: string;
}

/** The header value for a request. */
export async function sign(secret: string, input: SignInput): Promise<string> {
  const t = input.timestamp ?? Math.floor(Date.now() / 1000);
  const n = input.nonce ?? hex(crypto.getRandomValues(new Uint8Array(16)).buffer);
  const mac = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret),
    message(t, n, input.method, input.path, input.body),
  );
  return `t=${t},n=${n},v1=${hex(mac)}`;
}

/** On success, `mac` (the v1 value) identifies the signature: a receiver refusing replays remembers it. */
export type VerifyResult = { ok: true; timestamp: number; mac: string } | { ok: false; reason: string };

/** Checks a header value: well formed, fresh (|now - t| <= maxSkewS) and a valid MAC (compared in constant time). */
export async function verify(
  secret: string,
  header: string | null,
  input: Omit<SignInput, "timestamp" | "nonce">,
  opts: { nowS?: number; maxSkewS?: number } = {},
): Promise<VerifyResult> {
  if (!header) return { ok: false, reason: "missing X-Maieutic-Signature" };
  const parts = new Map<string, string>();
  for (const p of header.split(",")) {
    const i = p.indexOf("=");
    if (i > 0) parts.set(p.slice(0, i).trim(), p.slice(i + 1).trim());
  }
  const tRaw = parts.get("t");
  const n = parts.get("n");
  const v1 = parts.get("v1");
  if (
    !tRaw || !/^\d{1,12}$/.test(tRaw) || !n || !/^[0-9a-f]{16,64}$/.test(n) || !v1 ||
    !/^[0-9a-f]{64}$/.test(v1)
  ) {
    return {
      ok: false,
      reason: "malformed X-Maieutic-Signature (expected t=<unix seconds>,n=<hex nonce>,v1=<lowercase hex>)",
    };
  }
  const t = Number(tRaw);
  const now = opts.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (opts.maxSkewS ?? MAX_SKEW_S)) {
    return { ok: false, reason: "stale X-Maieutic-Signature timestamp (more than 5 minutes off)" };
  }
  const mac = new Uint8Array(v1.match(/../g)!.map((h) => parseInt(h, 16)));
  // crypto.subtle.verify compares in constant time.
  const good = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    mac,
    message(t, n, input.method, input.path, input.body),
  );
  return good ? { ok: true, timestamp: t, mac: v1 } : { ok: false, reason: "bad X-Maieutic-Signature" };
}

/**
 * Constant-time string equality (for bearer tokens): both sides are HMAC'd with a fresh random key and the
 * digests compared with a fixed-length XOR loop, so neither the contents nor the length leak through timing.
 */
export async function timingSafeEqual(a: string, b: string): Promise<boolean> {
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const [da, db] = await Promise.all([
    crypto.subtle.sign("HMAC", key, enc.encode(a)),
    crypto.subtle.sign("HMAC", key, enc.encode(b)),
  ]);
  const x = new Uint8Array(da), y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** The bearer token of an Authorization header, or undefined. */
export function bearer(header: string | null): string | undefined {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return m?.[1];
}
