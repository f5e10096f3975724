/**
 * Console progress: one line per logged step with step/total, epoch, loss, LR, tokens/s and ETA.
 * On a TTY the line is rewritten in place; otherwise (CI, files) each update is its own line.
 */

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
