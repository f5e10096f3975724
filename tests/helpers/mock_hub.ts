/**
 * A local mock of the Hugging Face Hub on 127.0.0.1 (port 0), enough for src/hub: the model-info API
 * (`/api/models/{repo}/revision/{rev}`), `/{repo}/resolve/{rev}/{file}` with Range support, a redirect of
 * safetensors files to a "CDN" path (same origin, or a second server for a cross-origin CDN), gated and
 * private repos with the Hub's status codes and X-Error-Code headers, and fault injection: error statuses
 * (429 with Retry-After, 5xx), and bodies cut off after N bytes (a dropped connection).
 */
import { join } from "node:path";

export interface MockRepo {
  /** Directory whose files the repo serves. */
  dir?: string;
  /** Extra or replacing files (e.g. a truncated model.safetensors). */
  files?: Record<string, Uint8Array | string>;
  /** Files of `dir` to leave out. */
  hide?: string[];
  gated?: boolean;
  private?: boolean;
}

export interface Fault {
  /** Matched against the request path (without query). */
  path: RegExp;
  /** Only Range requests whose start is at least this. */
  minStart?: number;
  /** Only requests asking for at least this many bytes. */
  minLength?: number;
  /** Respond with this status ... */
  status?: number;
  retryAfter?: string;
  /** ... or serve the body but cut it after this many bytes (connection dropped). */
  dropAfter?: number;
  /** How many matching requests to affect. */
  times: number;
}

export interface LoggedRequest {
  path: string;
  range?: string;
  authorization?: string;
  server: "hub" | "cdn";
}

export interface MockHub {
  url: string;
  cdnUrl: string;
  requests: LoggedRequest[];
  faults: Fault[];
  /** The commit sha of a repo (deterministic). */
  sha(repo: string): string;
  close(): Promise<void>;
}

export const GOOD_TOKEN = "hf_mock_good_token_0123456789";

async function sha1(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function repoFiles(r: MockRepo): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  if (r.dir) {
    for await (const e of Deno.readDir(r.dir)) {
      if (e.isFile && !(r.hide ?? []).includes(e.name)) {
        out.set(e.name, await Deno.readFile(join(r.dir, e.name)));
      }
    }
  }
  for (const [k, v] of Object.entries(r.files ?? {})) {
    out.set(k, typeof v === "string" ? new TextEncoder().encode(v) : v);
  }
  return out;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Serves `bytes` honouring a Range header; `dropAfter` cuts the body short with the full length declared. */
function serveBytes(req: Request, bytes: Uint8Array, dropAfter?: number): Response {
  const size = bytes.byteLength;
  const range = req.headers.get("range");
  let start = 0;
  let end = size - 1;
  let status = 200;
  const headers: Record<string, string> = { "accept-ranges": "bytes", etag: `"${size}"` };
  if (range) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (!m) return new Response("bad range", { status: 400 });
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start >= size) {
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
    }
    status = 206;
    headers["content-range"] = `bytes ${start}-${end}/${size}`;
  }
  const body = bytes.slice(start, end + 1);
  headers["content-length"] = String(body.byteLength);
  if (dropAfter !== undefined && dropAfter < body.byteLength) {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(body.slice(0, dropAfter));
        c.close(); // fewer bytes than content-length: the client sees a broken connection
      },
    });
    return new Response(stream, { status, headers });
  }
  return new Response(body, { status, headers });
}

export async function startMockHub(
  repos: Record<string, MockRepo>,
  opts: { crossOriginCdn?: boolean } = {},
): Promise<MockHub> {
  const shas = new Map<string, string>();
  const contents = new Map<string, Map<string, Uint8Array>>();
  for (const [id, r] of Object.entries(repos)) {
    shas.set(id, await sha1(id));
    contents.set(id, await repoFiles(r));
  }
  const requests: LoggedRequest[] = [];
  const faults: Fault[] = [];

  const fault = (req: Request, path: string): Fault | undefined => {
    const range = req.headers.get("range");
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    const start = m ? Number(m[1]) : 0;
    const len = m && m[2] !== "" ? Number(m[2]) - start + 1 : Infinity;
    const f = faults.find((f) =>
      f.times > 0 && f.path.test(path) && start >= (f.minStart ?? 0) && len >= (f.minLength ?? 0)
    );
    if (f) f.times--;
    return f;
  };

  const log = (req: Request, server: "hub" | "cdn") => {
    const u = new URL(req.url);
    requests.push({
      path: u.pathname,
      range: req.headers.get("range") ?? undefined,
      authorization: req.headers.get("authorization") ?? undefined,
      server,
    });
    return u;
  };

  const authOf = (req: Request) => {
    const a = req.headers.get("authorization");
    return a?.startsWith("Bearer ") ? a.slice(7) : undefined;
  };

  // The CDN serves /cdn/{repo...}/{sha}/{file} without auth (signed URL in the query).
  const cdnHandler = (req: Request, server: "hub" | "cdn"): Response => {
    const u = new URL(req.url);
    const parts = u.pathname.split("/").slice(2).map(decodeURIComponent);
    const file = parts.pop()!;
    parts.pop(); // sha
    const repo = parts.join("/");
    const bytes = contents.get(repo)?.get(file);
    if (!bytes || u.searchParams.get("sig") !== "ok") return new Response("no", { status: 403 });
    const f = fault(req, u.pathname);
    if (f?.status) {
      return new Response("fault", {
        status: f.status,
        headers: f.retryAfter ? { "retry-after": f.retryAfter } : {},
      });
    }
    void server;
    return serveBytes(req, bytes, f?.dropAfter);
  };

  const cdnAc = new AbortController();
  let cdnBase = "";
  let cdnServer: Deno.HttpServer<Deno.NetAddr> | undefined;
  if (opts.crossOriginCdn) {
    cdnServer = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: 0,
        signal: cdnAc.signal,
        onListen() {},
        onError: () => new Response("err", { status: 500 }),
      },
      (req) => {
        log(req, "cdn");
        return cdnHandler(req, "cdn");
      },
    );
    cdnBase = `http://127.0.0.1:${cdnServer.addr.port}`;
  }

  const handler = (req: Request): Response => {
    const u = log(req, "hub");
    const path = u.pathname;
    if (path.startsWith("/cdn/")) return cdnHandler(req, "hub");
    const f = fault(req, path);
    if (f?.status) {
      return new Response("fault", {
        status: f.status,
        headers: f.retryAfter ? { "retry-after": f.retryAfter } : {},
      });
    }
    const token = authOf(req);
    const api = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(path);
    const resolve = api ? null : /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path) ??
      /^\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoId = api ? api[1] : resolve?.[1];
    if (!repoId) return new Response("not found", { status: 404 });
    const repo = repos[repoId];
    if (!repo || (repo.private && token !== GOOD_TOKEN)) {
      return json(401, { error: "Repository Not Found" }, { "x-error-code": "RepoNotFound" });
    }
    const sha = shas.get(repoId)!;
    const rev = decodeURIComponent((api ?? resolve)![2]);
    if (rev !== "main" && rev !== sha) {
      return json(404, { error: `Invalid rev id: ${rev}` }, { "x-error-code": "RevisionNotFound" });
    }
    const files = contents.get(repoId)!;
    if (api) {
      return json(200, {
        id: repoId,
        sha,
        gated: repo.gated ? "manual" : false,
        private: Boolean(repo.private),
        siblings: [...files.keys()].sort().map((rfilename) => ({ rfilename })),
      });
    }
    if (repo.gated && token !== GOOD_TOKEN) {
      return json(token ? 403 : 401, {
        error:
          `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      }, { "x-error-code": "GatedRepo" });
    }
    const file = resolve![3].split("/").map(decodeURIComponent).join("/");
    const bytes = files.get(file);
    if (!bytes) return json(404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
    if (file.endsWith(".safetensors")) {
      // LFS files redirect to the CDN with a signed URL, as on the real Hub.
      const loc = `${cdnBase}/cdn/${repoId}/${sha}/${encodeURIComponent(file)}?sig=ok`;
      return new Response(null, {
        status: 302,
        headers: { location: loc, "x-repo-commit": sha, "x-linked-size": String(bytes.byteLength) },
      });
    }
    const res = serveBytes(req, bytes, f?.dropAfter);
    res.headers.set("x-repo-commit", sha);
    return res;
  };

  const ac = new AbortController();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
      onListen() {},
      onError: () => new Response("err", { status: 500 }),
    },
    handler,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    cdnUrl: cdnBase || url,
    requests,
    faults,
    sha: (repo) => shas.get(repo)!,
    async close() {
      ac.abort();
      cdnAc.abort();
      await server.finished;
      await cdnServer?.finished;
    },
  };
}
