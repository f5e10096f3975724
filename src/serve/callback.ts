/**
 * Job-end callbacks: the job's report POSTed as JSON to the caller's callback_url, signed with
 * X-Maieutic-Signature (sign.ts), retried with exponential backoff on network errors, timeouts, 408, 429 and
 * 5xx. Redirects are not followed (a callback must not be bounced to another host).
 */
import { sign, SIGNATURE_HEADER } from "./sign.ts";

function isPrivateIp(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  const v4 = h.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
  }
  return h === "::1" || h === "::" || /^f[cd][0-9a-f]{2}:/.test(h) || /^fe[89ab][0-9a-f]:/.test(h) ||
    h.startsWith("::ffff:");
}

/**
 * Checks a callback URL: https to a public host name; `allowLoopbackHttp` (tests, --insecure-localhost) also
 * admits http://127.0.0.1, http://localhost and http://[::1]. Returns an error message or undefined.
 */
export function checkCallbackUrl(raw: string, allowLoopbackHttp: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "callback_url is not a valid URL";
  }
  if (u.username || u.password) return "callback_url must not carry credentials";
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
  if (u.protocol === "http:" && loopback && allowLoopbackHttp) return undefined;
  if (u.protocol !== "https:") return "callback_url must be an https URL";
  if (loopback || isPrivateIp(u.hostname)) {
    return allowLoopbackHttp ? undefined : "callback_url must not point at a loopback or private address";
  }
  return undefined;
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
  fetch?: typeof fetch;
}

export interface AttemptResult {
  ok: boolean;
  retryable: boolean;
  error?: string;
}

/** One signed POST. */
export async function postSigned(
  url: string,
  body: string,
  opts: CallbackOptions,
  extraHeaders: Record<string, string> = {},
): Promise<AttemptResult> {
  const u = new URL(url);
  const signature = await sign(opts.secret, { method: "POST", path: u.pathname + u.search, body });
  try {
    const res = await (opts.fetch ?? fetch)(url, {
      method: "POST",
      headers: { "content-type": "application/json", [SIGNATURE_HEADER]: signature, ...extraHeaders },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
    });
    await res.body?.cancel();
    if (res.ok) return { ok: true, retryable: false };
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    return { ok: false, retryable, error: `HTTP ${res.status}` };
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
