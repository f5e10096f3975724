/**
 * Hugging Face Hub client (the parts of huggingface_hub's file_download.py we need):
 * - `resolve(repo, rev)`: GET `{endpoint}/api/models/{repo}/revision/{rev}` -> commit sha + file list;
 * - small files: GET `{endpoint}/{repo}/resolve/{sha}/{file}` into the HF cache layout (src/hub/cache.ts);
 * - weights: an HttpRangeSource on the same URL, read tensor by tensor with Range requests.
 * Auth is `Authorization: Bearer <token>` (token from HUGGINGFACE_API_KEY / HF_TOKEN via hubToken(), src/hub/token.ts).
 * Every Hub refusal becomes one clear UsageError line (gated, not found, bad revision, missing file).
 */
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "../util/errors.ts";
import { hubToken } from "./token.ts";
import { writeFileAtomic } from "../util/atomic.ts";
import { exists, hubOffline, snapshotDir, writeRef } from "./cache.ts";
import {
  httpGet,
  type HttpOptions,
  HttpRangeSource,
  HttpStatusError,
  type RangeSourceOptions,
  throwStatus,
} from "./http.ts";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

export interface HubClientOptions extends HttpOptions {
  /** Default: $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default: $HF_HUB_OFFLINE. */
  offline?: boolean;
}

export interface RepoRevision {
  repo: string;
  /** What the user asked for (branch, tag or sha). */
  revision: string;
  /** The commit sha it resolved to. */
  sha: string;
  /** Files in the repo at that commit, when the API listed them. */
  files?: string[];
}

const ModelInfoSchema = z.object({
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  siblings: z.array(z.object({ rfilename: z.string() }).passthrough()).optional(),
  gated: z.union([z.boolean(), z.string()]).optional(),
}).passthrough();

/** A valid Hub repo id: `name` or `org/name` (huggingface_hub's validate_repo_id rules). */
export function isRepoId(s: string): boolean {
  return /^(?:[\w\-.]{1,96}\/)?[\w\-.]{1,96}$/.test(s) && !s.includes("--") && !s.includes("..") &&
    !/^[-.]|[-.]$/.test(s.split("/").pop()!);
}

function encodePath(file: string): string {
  return file.split("/").map(encodeURIComponent).join("/");
}

export class HubClient {
  readonly endpoint: string;
  readonly offline: boolean;
  readonly http: HttpOptions;

  constructor(opts: HubClientOptions = {}) {
    this.endpoint = (opts.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
    this.offline = opts.offline ?? hubOffline();
    const token = "token" in opts ? opts.token : hubToken();
    this.http = { ...opts, token };
  }

  get hasToken(): boolean {
    return Boolean(this.http.token);
  }

  fileUrl(repo: string, sha: string, file: string): string {
    return `${this.endpoint}/${repo}/resolve/${sha}/${encodePath(file)}`;
  }

  /** One-line UsageErrors for the Hub's refusals; other errors pass through. */
  explain(e: unknown, repo: string, what: string): unknown {
    if (!(e instanceof HttpStatusError)) return e;
    const page = `https://huggingface.co/${repo}`;
    const tokenHint = "put your token in .env as HUGGINGFACE_API_KEY=hf_...";
    if (
      e.errorCode === "GatedRepo" ||
      ((e.status === 401 || e.status === 403) && e.errorCode !== "RepoNotFound")
    ) {
      return new UsageError(
        this.hasToken
          ? `${repo} is gated and your token (HUGGINGFACE_API_KEY) has no access: accept the license at ${page} with the account of that token`
          : `${repo} is gated: accept the license at ${page}, then ${tokenHint}`,
      );
    }
    if (e.errorCode === "RepoNotFound" || (e.status === 404 && what === "repo")) {
      return new UsageError(
        `model repo "${repo}" was not found on ${this.endpoint}${
          this.hasToken ? "" : ` (if it is private, ${tokenHint})`
        }`,
      );
    }
    if (e.errorCode === "RevisionNotFound") {
      return new UsageError(`${repo}: revision "${what}" does not exist`);
    }
    if (e.status === 404) {
      return new UsageError(`${repo}: file "${what}" does not exist in the repo (HTTP 404)`);
    }
    return new Error(`${repo}: ${e.message}`);
  }

  #assertOnline(what: string): void {
    if (this.offline) throw new UsageError(`HF_HUB_OFFLINE is set, so ${what} cannot be fetched`);
  }

  /** Resolves a revision to its commit sha (and file list); records refs/{revision} in the cache. */
  async resolve(repo: string, revision = "main"): Promise<RepoRevision> {
    this.#assertOnline(`${repo}@${revision}`);
    const url = `${this.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
    try {
      const { res } = await httpGet(url, this.http);
      if (!res.ok) await throwStatus(res, url);
      const body = ModelInfoSchema.safeParse(await res.json().catch(() => undefined));
      if (!body.success) throw new Error(`${url}: unexpected answer from the Hub API (no commit sha)`);
      const rr: RepoRevision = {
        repo,
        revision,
        sha: body.data.sha,
        files: body.data.siblings?.map((s) => s.rfilename),
      };
      await writeRef(repo, revision, rr.sha);
      return rr;
    } catch (e) {
      if (e instanceof HttpStatusError && e.status === 404 && e.errorCode !== "RepoNotFound") {
        throw e.errorCode === "RevisionNotFound" ? this.explain(e, repo, revision) : new UsageError(
          `model repo "${repo}" or its revision "${revision}" was not found on ${this.endpoint}`,
        );
      }
      throw this.explain(e, repo, "repo");
    }
  }

  /**
   * Downloads a small file into the snapshot cache unless it is already there; returns its path, or
   * undefined for an `optional` file the repo does not have.
   */
  async download(
    rr: RepoRevision,
    file: string,
    opts: { optional?: boolean } = {},
  ): Promise<string | undefined> {
    const path = join(snapshotDir(rr.repo, rr.sha), file);
    if (await exists(path)) return path;
    if (rr.files && !rr.files.includes(file)) {
      if (opts.optional) return undefined;
      throw new UsageError(`${rr.repo}@${rr.revision}: the repo has no "${file}"`);
    }
    this.#assertOnline(`${rr.repo}/${file}`);
    const url = this.fileUrl(rr.repo, rr.sha, file);
    try {
      const { res } = await httpGet(url, this.http);
      if (res.status === 404 && opts.optional) {
        await res.body?.cancel();
        return undefined;
      }
      if (!res.ok) await throwStatus(res, url);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const cl = res.headers.get("content-length");
      if (cl !== null && Number(cl) !== bytes.byteLength && !res.headers.get("content-encoding")) {
        throw new Error(
          `${rr.repo}/${file}: got ${bytes.byteLength} of ${cl} bytes (connection cut); nothing cached`,
        );
      }
      await writeFileAtomic(path, bytes);
      return path;
    } catch (e) {
      throw this.explain(e, rr.repo, file);
    }
  }

  /** A Range-request byte source for a (large) file of the repo. Errors map through `explain`. */
  open(
    rr: RepoRevision,
    file: string,
    opts: Omit<RangeSourceOptions, keyof HttpOptions> = {},
  ): HttpRangeSource {
    this.#assertOnline(`${rr.repo}/${file}`);
    const url = this.fileUrl(rr.repo, rr.sha, file);
    const src = new HttpRangeSource(url, { ...this.http, name: `${rr.repo}/${file}`, ...opts });
    // Map Hub refusals on any read to the same one-line errors.
    const read = src.read.bind(src);
    src.read = async (offset, length) => {
      try {
        return await read(offset, length);
      } catch (e) {
        throw this.explain(e, rr.repo, file);
      }
    };
    return src;
  }
}
