/**
 * A small HTTP/1.1 server over Deno.listen, with the connection deadlines that Deno.serve (Deno 2.9) does not
 * expose: Deno.serve has no header, body or idle timeout and no connection cap, so a client that sends half a
 * request line, or a body one byte at a time, holds its socket forever (issue #18). Here every connection
 * lives under a deadline at each stage:
 *
 *  - head: the request line and headers must arrive within `headerTimeoutMs` of the connection opening (or of
 *    the first byte of a kept-alive connection's next request, which must come within `idleTimeoutMs`);
 *  - body: the whole body within `bodyTimeoutMs` of the head;
 *  - response: written within `writeTimeoutMs` (a client that does not read is cut);
 *  - at most `maxConnections` at once; one over is answered 503 and closed at once.
 *
 * A missed deadline closes the socket. The handler's own time is not bounded here (the API's handlers answer
 * from memory). Parsing is strict, after RFC 9112: origin-form targets only, no obs-fold, no whitespace before a
 * header colon, a single Content-Length, Transfer-Encoding only as exactly "chunked" and never together with
 * Content-Length (the request-smuggling ambiguities), heads up to `maxHeaderBytes`. Responses are buffered
 * (the API's are small JSON) and sent with Content-Length.
 */

export interface ConnectionLimits {
  /** request line + headers, from connect (default 10 s) */
  headerTimeoutMs: number;
  /** the whole request body, from the end of the head (default 30 s) */
  bodyTimeoutMs: number;
  /** a kept-alive connection's wait for its next request (default 5 s) */
  idleTimeoutMs: number;
  /** writing a response (default 30 s) */
  writeTimeoutMs: number;
  /** open connections at once (default 256) */
  maxConnections: number;
  /** request line + headers (default 16 KiB) */
  maxHeaderBytes: number;
}

/**
 * Header 10 s + body 30 s: a client that sends half a request, or a body slower than the deadline, is
 * disconnected within 40 s (issue #18 asks for 45).
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 5_000,
  writeTimeoutMs: 30_000,
  maxConnections: 256,
  maxHeaderBytes: 16 * 1024,
};

export type Handler = (req: Request, info: { remoteAddr: Deno.NetAddr }) => Promise<Response>;

const enc = new TextEncoder();
const dec = new TextDecoder();
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** One connection's byte source, with a deadline that closes the socket when it passes. */
class Wire {
  buf = new Uint8Array(0);
  private timer: ReturnType<typeof setTimeout> | undefined;
  expired = false;
  closed = false;

  constructor(readonly conn: Deno.Conn) {}

  deadline(ms: number): void {
    this.clearDeadline();
    this.timer = setTimeout(() => {
      this.expired = true;
      this.close();
    }, ms);
  }

  clearDeadline(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.clearDeadline();
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** Reads more bytes into buf; false on EOF. */
  async fill(): Promise<boolean> {
    const chunk = new Uint8Array(16 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch (e) {
      if (this.expired) throw new HttpError(408, "deadline passed");
      throw e;
    }
    if (n === null) return false;
    const next = new Uint8Array(this.buf.length + n);
    next.set(this.buf);
    next.set(chunk.subarray(0, n), this.buf.length);
    this.buf = next;
    return true;
  }

  take(n: number): Uint8Array {
    const out = this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
    return out;
  }

  /** Index of CRLF CRLF (or of CRLF at `from` for an empty line), or -1. */
  indexOf(seq: number[], from = 0): number {
    outer: for (let i = from; i <= this.buf.length - seq.length; i++) {
      for (let j = 0; j < seq.length; j++) if (this.buf[i + j] !== seq[j]) continue outer;
      return i;
    }
    return -1;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }
}

const CRLF = [13, 10];
const CRLFCRLF = [13, 10, 13, 10];

interface Head {
  method: string;
  target: string;
  version: "1.0" | "1.1";
  headers: Headers;
  length: number | "chunked";
  keepAlive: boolean;
}

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const m = lines[0].match(/^([A-Z]+) (\S+) HTTP\/1\.([01])$/);
  if (!m || !TOKEN_RE.test(m[1])) throw new HttpError(400, "malformed request line");
  const [, method, target, minor] = m;
  if (!target.startsWith("/")) throw new HttpError(400, "request target must be a path");
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    if (line[0] === " " || line[0] === "\t") throw new HttpError(400, "obsolete header folding");
    const i = line.indexOf(":");
    const name = i > 0 ? line.slice(0, i) : "";
    if (!TOKEN_RE.test(name)) throw new HttpError(400, "malformed header line");
    try {
      headers.append(name, line.slice(i + 1).trim());
    } catch {
      throw new HttpError(400, `invalid value for header ${name}`);
    }
  }
  const version = minor === "1" ? "1.1" : "1.0";
  if (version === "1.1" && !headers.has("host")) throw new HttpError(400, "missing Host header");
  const te = headers.get("transfer-encoding");
  const cl = headers.get("content-length");
  let length: number | "chunked" = 0;
  if (te !== null) {
    if (cl !== null) throw new HttpError(400, "both Content-Length and Transfer-Encoding");
    if (te.toLowerCase() !== "chunked") throw new HttpError(501, "only Transfer-Encoding: chunked");
    length = "chunked";
  } else if (cl !== null) {
    if (!/^\d{1,15}$/.test(cl)) throw new HttpError(400, "malformed Content-Length");
    length = Number(cl);
  }
  const conn = (headers.get("connection") ?? "").toLowerCase();
  const keepAlive = version === "1.1" ? !/\bclose\b/.test(conn) : /\bkeep-alive\b/.test(conn);
  return { method, target, version, headers, length, keepAlive };
}

/** The body as a stream that reads from the wire only as the handler pulls. */
function bodyStream(wire: Wire, head: Head, onDone: () => void, maxLine: number): ReadableStream<Uint8Array> {
  let remaining = typeof head.length === "number" ? head.length : 0;
  let chunkLeft = 0;
  let state: "size" | "data" | "crlf" | "trailers" | "done" = "size";
  const expect = head.headers.get("expect")?.toLowerCase() === "100-continue";
  let continued = false;
  const finish = (c: ReadableStreamDefaultController<Uint8Array>) => {
    state = "done";
    onDone();
    c.close();
  };
  const need = async () => {
    if (!(await wire.fill())) throw new HttpError(400, "connection closed mid-body");
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (expect && !continued) {
        continued = true;
        await wire.write(enc.encode("HTTP/1.1 100 Continue\r\n\r\n"));
      }
      if (head.length !== "chunked") {
        if (remaining === 0) return finish(c);
        if (wire.buf.length === 0) await need();
        const part = wire.take(Math.min(remaining, wire.buf.length));
        remaining -= part.length;
        c.enqueue(part);
        if (remaining === 0) finish(c);
        return;
      }
      while (true) {
        if (state === "size") {
          let i = wire.indexOf(CRLF);
          while (i < 0) {
            if (wire.buf.length > maxLine) throw new HttpError(400, "chunk size line too long");
            await need();
            i = wire.indexOf(CRLF);
          }
          const line = dec.decode(wire.take(i + 2)).slice(0, -2);
          const sm = line.match(/^([0-9a-fA-F]{1,8})(;.*)?$/);
          if (!sm) throw new HttpError(400, "malformed chunk size");
          chunkLeft = parseInt(sm[1], 16);
          state = chunkLeft === 0 ? "trailers" : "data";
        } else if (state === "data") {
          if (wire.buf.length === 0) await need();
          const part = wire.take(Math.min(chunkLeft, wire.buf.length));
          chunkLeft -= part.length;
          if (chunkLeft === 0) state = "crlf";
          c.enqueue(part);
          return;
        } else if (state === "crlf") {
          while (wire.buf.length < 2) await need();
          if (wire.buf[0] !== 13 || wire.buf[1] !== 10) throw new HttpError(400, "malformed chunk");
          wire.take(2);
          state = "size";
        } else if (state === "trailers") {
          // Trailer fields are read and dropped, up to an empty line.
          let i = wire.indexOf(CRLF);
          while (i < 0) {
            if (wire.buf.length > maxLine) throw new HttpError(400, "trailers too long");
            await need();
            i = wire.indexOf(CRLF);
          }
          wire.take(i + 2);
          if (i === 0) return finish(c);
        } else return;
      }
    },
  }, { highWaterMark: 0 });
}

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

function plain(status: number, message: string): Response {
  return new Response(JSON.stringify({ error: message }) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

async function serialize(res: Response, head: boolean, keepAlive: boolean): Promise<Uint8Array> {
  const body = head || res.status === 204 || res.status === 304
    ? new Uint8Array()
    : new Uint8Array(await res.arrayBuffer());
  if (head) await res.body?.cancel();
  const lines = [`HTTP/1.1 ${res.status} ${REASONS[res.status] ?? "Status"}`];
  for (const [k, v] of res.headers) {
    if (k !== "content-length" && k !== "connection" && k !== "transfer-encoding") lines.push(`${k}: ${v}`);
  }
  if (res.status !== 204) lines.push(`content-length: ${body.length}`);
  lines.push(`connection: ${keepAlive ? "keep-alive" : "close"}`);
  const h = enc.encode(lines.join("\r\n") + "\r\n\r\n");
  const out = new Uint8Array(h.length + body.length);
  out.set(h);
  out.set(body, h.length);
  return out;
}

export interface Http1Server {
  addr: Deno.NetAddr;
  /** Stops accepting, lets requests in flight finish, closes idle connections; resolves when all are closed. */
  shutdown(): Promise<void>;
}

export function serveHttp1(
  opts: { hostname: string; port: number; limits?: Partial<ConnectionLimits> },
  handler: Handler,
): Http1Server {
  const lim = { ...DEFAULT_CONNECTION_LIMITS, ...opts.limits };
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  const open = new Map<Wire, { busy: boolean }>();
  const done = new Set<Promise<void>>();
  let stopping = false;

  async function respond(wire: Wire, res: Response, headOnly: boolean, keepAlive: boolean): Promise<void> {
    const bytes = await serialize(res, headOnly, keepAlive);
    wire.deadline(lim.writeTimeoutMs);
    await wire.write(bytes);
    wire.clearDeadline();
  }

  async function serveConn(wire: Wire): Promise<void> {
    const state = open.get(wire)!;
    const remoteAddr = wire.conn.remoteAddr as Deno.NetAddr;
    let first = true;
    try {
      while (!stopping) {
        // ---- head
        // A kept-alive connection gets idleTimeoutMs for its next request to begin, then the header deadline.
        let armed = first || wire.buf.length > 0;
        wire.deadline(armed ? lim.headerTimeoutMs : lim.idleTimeoutMs);
        let end = wire.indexOf(CRLFCRLF);
        while (end < 0) {
          if (wire.buf.length > lim.maxHeaderBytes) throw new HttpError(431, "request head too large");
          if (!(await wire.fill())) return;
          if (!armed) {
            armed = true;
            wire.deadline(lim.headerTimeoutMs);
          }
          end = wire.indexOf(CRLFCRLF);
        }
        if (end > lim.maxHeaderBytes) throw new HttpError(431, "request head too large");
        first = false;
        const head = parseHead(dec.decode(wire.take(end + 4)).slice(0, -4));
        // ---- body, under its own deadline
        let bodyDone = head.length === 0;
        const hasBody = head.length === "chunked" || head.length > 0;
        wire.deadline(lim.bodyTimeoutMs);
        const body = hasBody
          ? bodyStream(wire, head, () => {
            bodyDone = true;
            wire.clearDeadline();
          }, lim.maxHeaderBytes)
          : null;
        if (!hasBody) wire.clearDeadline();
        const req = new Request(`http://h${head.target}`, {
          method: head.method,
          headers: head.headers,
          body: body && head.method !== "GET" && head.method !== "HEAD" ? body : null,
          duplex: "half",
        } as RequestInit);
        state.busy = true;
        let res: Response;
        try {
          res = await handler(req, { remoteAddr });
        } finally {
          state.busy = false;
        }
        if (wire.closed) return;
        // Keep the connection only when the request was read to its end.
        const keep = head.keepAlive && bodyDone && !stopping;
        wire.clearDeadline();
        await respond(wire, res, head.method === "HEAD", keep);
        if (!keep) return;
      }
    } catch (e) {
      if (!wire.closed && e instanceof HttpError && e.status !== 408) {
        await respond(wire, plain(e.status, e.message), false, false).catch(() => {});
      }
    } finally {
      wire.close();
      open.delete(wire);
    }
  }

  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      const wire = new Wire(conn);
      if (open.size >= lim.maxConnections || stopping) {
        // Answer at once rather than queue behind connections that may be slow on purpose.
        wire.deadline(1000);
        const busy = enc.encode(
          "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        wire.write(busy).catch(() => {}).finally(() => wire.close());
        continue;
      }
      open.set(wire, { busy: false });
      const p = serveConn(wire).catch(() => {});
      done.add(p);
      p.finally(() => done.delete(p));
    }
  })();

  return {
    addr: listener.addr as Deno.NetAddr,
    async shutdown() {
      stopping = true;
      try {
        listener.close();
      } catch { /* closed */ }
      await acceptLoop;
      // Idle connections (waiting for a head) close now; busy ones finish their response first.
      for (const [wire, st] of open) if (!st.busy) wire.close();
      await Promise.all([...done]);
    },
  };
}
