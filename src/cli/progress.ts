/**
 * Console progress: one line per logged step with step/total, epoch, loss, LR, tokens/s and ETA.
 * On a TTY the line is rewritten in place; otherwise (CI, files) each update is its own line.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
    ? `${m}m${String(sec).padStart(2, "0")}s`
    : `${sec}s`;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** ETA from the mean time per step so far. */
export function eta(stepsDone: number, totalSteps: number, elapsedSeconds: number): number {
  if (stepsDone <= 0) return NaN;
  return (elapsedSeconds / stepsDone) * (totalSteps - stepsDone);
}

export class ProgressLine {
  private readonly tty = Deno.stderr.isTerminal();
  private lastLen = 0;
  constructor(private readonly quiet = false) {}

  update(text: string): void {
    if (this.quiet) return;
    const enc = new TextEncoder();
    if (this.tty) {
      const pad = Math.max(0, this.lastLen - text.length);
      Deno.stderr.writeSync(enc.encode(`\r${text}${" ".repeat(pad)}`));
      this.lastLen = text.length;
    } else {
      Deno.stderr.writeSync(enc.encode(text + "\n"));
    }
  }

  /** Ends the in-place line so the next output starts on a fresh line. */
  done(): void {
    if (this.tty && this.lastLen > 0 && !this.quiet) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    this.lastLen = 0;
  }
}
