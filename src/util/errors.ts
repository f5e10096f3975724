/**
 * Errors that map to exit codes (docs/ARCHITECTURE.md#commands-and-exit-codes): UsageError = bad usage or bad input (exit 2), anything else is a
 * runtime failure (exit 1). Messages name the file/field and say what to do.
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Thrown by the trainer after it saved a final checkpoint on SIGINT/SIGTERM (exit 130). */
export class InterruptedError extends Error {
  override name = "InterruptedError";
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof InterruptedError) return 130;
  return 1;
}
