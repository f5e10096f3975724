/**
 * Job-end callbacks: the job's report POSTed as JSON to the caller's callback_url, signed with
 * X-Maieutic-Signature (sign.ts), retried with exponential backoff on network errors, timeouts, 408, 429 and
 * 5xx. Redirects are not followed (a callback must not be bounced to another host).
 *
 * SSRF: the URL is checked when the job is submitted (scheme, credentials, names that mean "this machine",
 * address literals; address.ts), and again at every attempt, where the name is resolved, EVERY address it
 * resolves to must be public, and the request goes to the address that was checked: a TCP connection to that
 * IP, TLS started on it with the URL's host name (SNI and certificate checks), and the HTTP/1.1 request
 * written by hand. So a name that resolves differently between the check and the connection (DNS rebinding)
 * cannot steer the request to an internal host.
 */
import { parseIp, refusedAddress, refusedHostname } from "./address.ts";
import { sign, SIGNATURE_HEADER } from "./sign.ts";

export interface DestinationPolicy {
  /** test-only (and --insecure-localhost): admit loopback addresses, and plain http to them only */
  allowLoopback?: boolean;
  /** when set, only these host names (lower case, exact) may receive callbacks */
  hosts?: string[];
}

/**
 * Checks a callback URL without resolving anything: https (or, with allowLoopback, http), no credentials, a
 * host that is an allowed literal address or a name that does not mean a local host. Returns an error message
 * or undefined. The resolved addresses are checked at send time (`resolveDestination`).
 */
export function checkCallbackUrl(raw: string, policy: DestinationPolicy = {}): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "callback_url is not a valid URL";
  }
  if (u.username || u.password) return "callback_url must not carry credentials";
  if (u.protocol !== "https:" && !(u.protocol === "http:" && policy.allowLoopback)) {
    return "callback_url must be an https URL";
  }
  const host = u.hostname;
  const ip = parseIp(host);
  if (ip) {
    const why = refusedAddress(host, policy);
    if (why) return `callback_url must point at a public address: ${why}`;
    if (u.protocol === "http:" && refusedAddress(host) === undefined) {
      return "callback_url must be an https URL (plain http only to a loopback address)";
    }
  } else {
    const why = refusedHostname(host);
    if (why) return `callback_url: ${why}`;
  }
  if (policy.hosts && !policy.hosts.includes(host.toLowerCase().replace(/\.$/, ""))) {
    return `callback_url: ${host} is not one of the server's callback hosts (--callback-host)`;
  }
  return undefined;
}

/** Resolves a host name to its IPv4 and IPv6 addresses. */
export type Resolver = (hostname: string) => Promise<string[]>;

export const dnsResolver: Resolver = async (hostname) => {
  const [a, aaaa] = await Promise.allSettled([
    Deno.resolveDns(hostname, "A"),
    Deno.resolveDns(hostname, "AAAA"),
  ]);
  return [...(a.status === "fulfilled" ? a.value : []), ...(aaaa.status === "fulfilled" ? aaaa.value : [])];
};

/**
 * The address to connect to for `url`, after checking every address the name resolves to; or why none may
 * be used (then the attempt is not retried: the destination itself is refused).
 */
export async function resolveDestination(
  url: URL,
  policy: DestinationPolicy,
  resolve: Resolver,
): Promise<{ address: string } | { error: string }> {
  const pre = checkCallbackUrl(url.href, policy);
  if (pre) return { error: pre };
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const addrs = parseIp(host) ? [host] : await resolve(host.replace(/\.$/, ""));
  if (addrs.length === 0) return { error: `${url.hostname} does not resolve` };
  for (const a of addrs) {
    const why = refusedAddress(a, policy);
    if (why) return { error: `${url.hostname} resolves to a refused address: ${why}` };
    if (url.protocol === "http:" && refusedAddress(a) === undefined) {
      return { error: `${url.hostname} resolves to ${a}: plain http only to a loopback address` };
    }
  }
  return { address: addrs[0] };
}

export interface CallbackOptions {
  secret: string;
  /** total attempts (default 6) */
  attempts?: number;
  /** first retry delay, doubled each time (default 1000 ms), capped at maxDelayMs (default 60000) */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** per attempt (default 10000 ms) */
  timeoutMs?: number;
  /** who may receive callbacks */
  policy?: DestinationPolicy;
  /** name resolution (default DNS; tests pass a stand-in so no name is ever looked up) */
  resolve?: Resolver;
  /** PEM certificates trusted for https callbacks besides the system's (tests: a test certificate) */
  caCerts?: string[];
}

export interface AttemptResult {
  ok: boolean;
  retryable: boolean;
  error?: string;
}

const enc = new TextEncoder();

/** One HTTP/1.1 POST over a connection to `address`; resolves to the response status. */
async function postTo(
  url: URL,
  address: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  caCerts?: string[],
): Promise<number> {
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  let conn: Deno.Conn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn?.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    const tcp = await Deno.connect({ hostname: address, port });
    conn = tcp;
    if (timedOut) throw new Error("timed out");
    if (url.protocol === "https:") {
      // TLS on the checked address, verified against the URL's name (SNI and certificate).
      conn = await Deno.startTls(tcp, { hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), caCerts });
    }
    const bytes = enc.encode(body);
    const head = [
      `POST ${url.pathname}${url.search} HTTP/1.1`,
      `host: ${url.host}`,
      `content-length: ${bytes.length}`,
      "connection: close",
      "user-agent: maieutic-serve",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ].join("\r\n") + "\r\n\r\n";
    for (const part of [enc.encode(head), bytes]) {
      let off = 0;
      while (off < part.length) off += await conn.write(part.subarray(off));
    }
    // Only the status line matters.
    const buf = new Uint8Array(1024);
    let text = "";
    while (!text.includes("\r\n") && text.length < 1024) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
    if (!m) throw new Error("the callback receiver sent no HTTP response");
    return Number(m[1]);
  } catch (e) {
    throw timedOut ? new Error(`timed out after ${timeoutMs} ms`) : e;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

/** One signed POST to the checked address. */
export async function postSigned(
  url: string,
  body: string,
  opts: CallbackOptions,
  extraHeaders: Record<string, string> = {},
): Promise<AttemptResult> {
  const u = new URL(url);
  const dest = await resolveDestination(u, opts.policy ?? {}, opts.resolve ?? dnsResolver).catch((e) => ({
    error: `${u.hostname}: ${(e as Error).message}`,
  }));
  if ("error" in dest) {
    // A name that does not resolve may be a passing DNS failure; a refused address is final.
    return { ok: false, retryable: dest.error.endsWith("does not resolve"), error: dest.error };
  }
  const signature = await sign(opts.secret, { method: "POST", path: u.pathname + u.search, body });
  try {
    const status = await postTo(
      u,
      dest.address,
      {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: signature,
        ...extraHeaders,
      },
      body,
      opts.timeoutMs ?? 10_000,
      opts.caCerts,
    );
    if (status >= 200 && status < 300) return { ok: true, retryable: false };
    const retryable = status === 408 || status === 429 || status >= 500;
    return { ok: false, retryable, error: `HTTP ${status}` };
  } catch (e) {
    return { ok: false, retryable: true, error: (e as Error).message };
  }
}

/**
 * Delivers with retries. `onAttempt` sees each attempt's outcome (the server persists it); `stop` ends the
 * retries early (server shutdown). Resolves to the last attempt's result.
 */
export async function deliver(
  url: string,
  body: string,
  opts: CallbackOptions,
  hooks: {
    onAttempt?: (n: number, r: AttemptResult) => Promise<void> | void;
    stop?: AbortSignal;
    headers?: Record<string, string>;
  } = {},
): Promise<AttemptResult> {
  const attempts = opts.attempts ?? 6;
  let delay = opts.baseDelayMs ?? 1000;
  let last: AttemptResult = { ok: false, retryable: false, error: "not attempted" };
  for (let n = 1; n <= attempts; n++) {
    if (hooks.stop?.aborted) break;
    last = await postSigned(url, body, opts, hooks.headers);
    await hooks.onAttempt?.(n, last);
    if (last.ok || !last.retryable || n === attempts) break;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        hooks.stop?.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, delay);
      hooks.stop?.addEventListener("abort", done, { once: true });
    });
    delay = Math.min(delay * 2, opts.maxDelayMs ?? 60_000);
  }
  return last;
}
