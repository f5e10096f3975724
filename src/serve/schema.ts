/**
 * Schemas of what crosses the eval-job API's boundaries: the submission body, and the job record persisted
 * under the jobs directory (validated again when the server reads it back after a restart).
 */
import { z } from "zod";

const noNul = (s: string) => !s.includes("\0");

/** POST /v1/eval-jobs. Unknown keys are errors (a typo such as "max_sample" must not be silently ignored). */
export const EvalJobRequestSchema = z.strictObject({
  /** adapter directory or checkpoint name, resolved inside the adapter root (see paths.ts) */
  adapter: z.string().min(1).max(1024).refine(noNul, "must not contain NUL"),
  /** dialogue file, resolved inside one of the data roots */
  data: z.string().min(1).max(1024).refine(noNul, "must not contain NUL"),
  generate: z.boolean().optional(),
  max_samples: z.number().int().min(1).max(1_000_000).optional(),
  /** https URL the report is POSTed to (signed) when the job ends */
  callback_url: z.string().max(2048).optional(),
});
export type EvalJobRequest = z.infer<typeof EvalJobRequestSchema>;

export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export const JobStatusSchema = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof JobStatusSchema>;
export const FINAL_STATUSES: readonly JobStatus[] = ["succeeded", "failed", "cancelled"];

export const CallbackStateSchema = z.object({
  url: z.string(),
  state: z.enum(["pending", "delivered", "failed"]),
  attempts: z.number().int().min(0),
  last_error: z.string().optional(),
  delivered_at: z.string().optional(),
});
export type CallbackState = z.infer<typeof CallbackStateSchema>;

/** One job as stored in `<jobs-dir>/<id>.json` and (minus `resolved` and `pid`) as returned by the API. */
export const EvalJobSchema = z.object({
  id: z.uuid(),
  /** submission order (monotonic across restarts) */
  seq: z.number().int().min(0),
  status: JobStatusSchema,
  request: EvalJobRequestSchema,
  /** real paths the runner uses, fixed at submission */
  resolved: z.object({ adapter: z.string(), data: z.string() }),
  /** base model passed to eval (--model), fixed at submission */
  model: z.string().optional(),
  /** runs started so far (a run interrupted by a server crash is retried once) */
  attempts: z.number().int().min(0),
  created_at: z.string(),
  started_at: z.string().optional(),
  finished_at: z.string().optional(),
  timings: z.object({
    queued_ms: z.number().optional(),
    run_ms: z.number().optional(),
    total_ms: z.number().optional(),
  }),
  report: z.record(z.string(), z.unknown()).optional(),
  error: z.string().optional(),
  /** notes such as "server restarted while running; retried" */
  events: z.array(z.object({ at: z.string(), note: z.string() })),
  callback: CallbackStateSchema.optional(),
  /** eval subprocess of the current run (so a restarted server can reap an orphan) */
  pid: z.number().int().optional(),
  /** its start time (clock ticks since boot, /proc/<pid>/stat), so a recycled pid is never mistaken for it */
  pid_start: z.number().optional(),
  /** the submitter's Idempotency-Key: a retried submission with it returns this job */
  idempotency_key: z.string().optional(),
  /** files the eval wrote (its report and samples; real paths), deleted when the job is pruned */
  outputs: z.array(z.string()).optional(),
});
export type EvalJob = z.infer<typeof EvalJobSchema>;

/** The API view of a job (no server-side absolute paths, no pid). */
export function publicJob(job: EvalJob): Record<string, unknown> {
  const { resolved: _r, pid: _p, pid_start: _ps, seq: _s, outputs: _o, ...rest } = job;
  return rest;
}

/** "field: message" for the first zod issue, plus the field name alone (for the 400 body). */
export function firstIssue(err: z.ZodError): { field: string; message: string } {
  const issue = err.issues[0];
  let field = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") field = (issue as { keys: string[] }).keys.join(",");
  return { field: field || "(body)", message: issue.message };
}
