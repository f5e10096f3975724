/**
 * How a training run reacts to signals, as a VM and a terminal send them:
 * - SIGTERM (a preemption notice, `systemctl stop`, `docker stop`): finish the current optimizer step, write a
 *   checkpoint and exit 143 (128 + 15, what a shell reports for a process SIGTERM ended);
 * - SIGINT (Ctrl-C): the same, exit 130;
 * - a second Ctrl-C: exit 130 at once, naming the complete checkpoint `--resume` will continue from. Every file
 *   is written atomically (a checkpoint directory is renamed into place complete), so nothing half-written is
 *   left that a resume could pick; the next launch removes the temp files.
 * A second SIGTERM changes nothing: the first one already stops at the earliest safe point.
 */
export type StopSignal = "SIGINT" | "SIGTERM";

export const EXIT_CODE: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

export interface StopHandlers {
  /** The first signal: training stops after the current step and its checkpoint. */
  onStop(signal: StopSignal): void;
  /** A second Ctrl-C: says what --resume will continue from, then the process exits 130. */
  onForce(): void;
  /** Exits the process (Deno.exit; injectable for tests). */
  exit?(code: number): void;
}

export class StopSignals {
  /** The first signal received, or null. */
  signal: StopSignal | null = null;
  private readonly listeners: [Deno.Signal, () => void][] = [];
  private h: StopHandlers | null = null;

  /** What a signal does (the listeners call this; tests call it directly). */
  receive(sig: StopSignal): void {
    if (!this.h) return;
    if (this.signal === null) {
      this.signal = sig;
      this.h.onStop(sig);
      return;
    }
    if (sig === "SIGINT") {
      this.h.onForce();
      (this.h.exit ?? Deno.exit)(EXIT_CODE.SIGINT);
    }
  }

  get stopping(): boolean {
    return this.signal !== null;
  }

  /** Listens until uninstall(); the handlers say what the run does. */
  install(h: StopHandlers): this {
    this.h = h;
    // Windows delivers only SIGINT (Ctrl-C / Ctrl-Break) to Deno.
    const sigs: StopSignal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of sigs) {
      const fn = () => this.receive(s);
      Deno.addSignalListener(s, fn);
      this.listeners.push([s, fn]);
    }
    return this;
  }

  /** Idempotent: a signal afterwards has its default effect again (the process ends). */
  uninstall(): void {
    this.h = null;
    for (const [s, fn] of this.listeners.splice(0)) Deno.removeSignalListener(s, fn);
  }
}
