/**
 * What every request to the eval API passes before it is acted on (issue #18): size limits read as the body
 * streams, the bearer token (constant time), the request signature (once only, remembered across restarts:
 * nonces.ts), and the checks that keep a web page out of a server on 127.0.0.1 (content type, Origin, Host).
 * Plus the JSON response helpers.
 *
 * The Deno Deploy app (deploy/app.ts) imports this file too: keep its imports to web-standard code (sign.ts) and
 * types.
 */
import { bearer, SIGNATURE_HEADER, timingSafeEqual, verify } from "./sign.ts";
import type { NonceStore } from "./nonces.ts";

export const MAX_BODY_BYTES = 64 * 1024;

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

export function problem(
  status: number,
  error: string,
  field?: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, field ? { error, field } : { error }, headers);
}

/** Reads at most `limit` bytes as they stream in; undefined (and the rest cancelled) when the body is larger. */
export function readLimited(req: Request, limit: number): Promise<Uint8Array | undefined> {
  return readBodyLimited(req.body, limit, req.headers.get("content-length"));
}

/**
 * readLimited for any body (a request's or a response's): a Content-Length over `limit` refuses it unread,
 * else at most `limit` bytes are read as they stream in; undefined (and the rest cancelled) when it is larger.
 */
export async function readBodyLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  contentLength: string | null,
): Promise<Uint8Array | undefined> {
  if (contentLength !== null && Number(contentLength) > limit) {
    await body?.cancel().catch(() => {});
    return undefined;
  }
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** True when the request carries the token (always true when the server has none: --insecure-localhost). */
export async function hasToken(req: Request, token: string | undefined): Promise<boolean> {
  if (!token) return true;
  const given = bearer(req.headers.get("authorization"));
  return given !== undefined && await timingSafeEqual(given, token);
}

export async function checkToken(req: Request, token: string | undefined): Promise<Response | undefined> {
  if (await hasToken(req, token)) return undefined;
  const given = bearer(req.headers.get("authorization"));
  return problem(401, given === undefined ? "missing bearer token" : "bad token", undefined, {
    "www-authenticate": 'Bearer realm="maieutic"',
  });
}

const LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"];

function hostOnly(hostHeader: string): string {
  const m = hostHeader.toLowerCase().match(/^(\[[^\]]*\]|[^:]*)(?::\d+)?$/);
  return m ? m[1] : "";
}

/**
 * Cross-site defences. A browser can be made to send a request to a server on 127.0.0.1: as a "simple"
 * cross-origin POST (text/plain or a form, no preflight), or after DNS rebinding (the page's own name, now
 * resolving to 127.0.0.1, in Host). So: a body must be declared application/json (browsers preflight that,
 * and this server answers no preflight; a request without a body needs no type); an Origin other than this server's own is refused; and without a
 * token (--insecure-localhost) the Host must be a loopback name.
 */
export function checkSite(req: Request, opts: { loopbackOnly: boolean }): Response | undefined {
  const host = req.headers.get("host") ?? "";
  if (opts.loopbackOnly && !LOOPBACK_HOSTS.includes(hostOnly(host))) {
    return problem(403, `Host "${host.slice(0, 100)}" is not a loopback name (--insecure-localhost)`);
  }
  const origin = req.headers.get("origin");
  if (origin !== null && origin !== `http://${host}` && origin !== `https://${host}`) {
    return problem(403, "cross-origin requests are refused");
  }
  const cl = req.headers.get("content-length");
  const hasBody = req.headers.has("transfer-encoding") || (cl !== null && cl !== "0");
  if (hasBody) {
    const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/json") {
      return problem(415, "send the body as Content-Type: application/json", "content-type");
    }
  }
  return undefined;
}

/**
 * Verifies X-Maieutic-Signature (when sent, or when required) and claims it in the nonce store, so each
 * signature is accepted once, also across restarts.
 */
export async function checkSignature(
  req: Request,
  url: URL,
  body: Uint8Array,
  opts: { secret?: string; required?: boolean; nonces?: NonceStore },
): Promise<Response | undefined> {
  const header = req.headers.get(SIGNATURE_HEADER);
  if (header === null && !opts.required) return undefined;
  if (!opts.secret) return problem(401, "this server has no signing secret; send no signature");
  const r = await verify(opts.secret, header, { method: req.method, path: url.pathname + url.search, body });
  if (!r.ok) return problem(401, r.reason);
  if (!opts.nonces) return undefined;
  const claim = await opts.nonces.claim(r.mac);
  if (claim === "replay") return problem(401, "replayed X-Maieutic-Signature");
  if (claim === "full") {
    return problem(503, "too many signed requests in the last 11 minutes", undefined, {
      "retry-after": "60",
    });
  }
  return undefined;
}
