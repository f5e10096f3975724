/**
 * Progress on stderr, the one module every long job uses: `ProgressLine` (the trainer's line per logged step:
 * step/total, epoch, loss, LR, tokens/s, ETA) and `stderrProgress` (bytes done of a download or conversion, with
 * rate and ETA). On a terminal the line is redrawn in place; otherwise (CI, files) each update is its own line,
 * and byte progress prints at most every `intervalMs` (default 10 s) plus a final line, so logs stay readable.
 */
import { formatDuration } from "./format.ts";
export { formatDuration };

/** The trainer's in-place status line (quiet: prints nothing, for --json-logs). */
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

export interface Progress {
  add(bytes: number): void;
  /** Prints the final line (once). */
  done(): void;
}

export const NO_PROGRESS: Progress = { add() {}, done() {} };

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** The progress line for `done` of `total` bytes after `elapsedS` seconds. */
export function progressLine(label: string, done: number, total: number, elapsedS: number): string {
  const rate = elapsedS > 0 ? done / elapsedS : 0;
  const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  const tail = done >= total ? `in ${formatDuration(elapsedS)}` : `ETA ${formatDuration(eta)}`;
  return `${label}: ${formatBytes(done)} / ${formatBytes(total)} (${pct}%) ${formatBytes(rate)}/s ${tail}`;
}

export interface StderrProgressOptions {
  intervalMs?: number;
  /** Where lines go (default: stderr). */
  write?: (text: string) => void;
  /** Redraw in place (default: stderr is a terminal). */
  tty?: boolean;
  now?: () => number;
}

export function stderrProgress(label: string, total: number, opts: StderrProgressOptions = {}): Progress {
  const enc = new TextEncoder();
  const write = opts.write ?? ((t: string) => Deno.stderr.writeSync(enc.encode(t)));
  const tty = opts.tty ?? Deno.stderr.isTerminal();
  const now = opts.now ?? (() => performance.now());
  const interval = opts.intervalMs ?? (tty ? 200 : 10_000);
  const t0 = now();
  let last = t0;
  let done = 0;
  let finished = false;
  const line = () => progressLine(label, done, total, (now() - t0) / 1000);
  return {
    add(n) {
      done += n;
      const t = now();
      if (t - last >= interval && !finished) {
        last = t;
        write(tty ? `\r\x1b[2K${line()}` : `${line()}\n`);
      }
    },
    done() {
      if (finished) return;
      finished = true;
      write(tty ? `\r\x1b[2K${line()}\n` : `${line()}\n`);
    },
  };
}
