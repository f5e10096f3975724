/**
 * logs/training_metrics.csv: one row per logging or eval step, appended and flushed as training goes so
 * `tail -f` works (docs/ARCHITECTURE.md#the-output-tree). The header is fixed at run start; a resumed run keeps the existing file and
 * drops rows past the checkpoint it resumed from, so the file matches an uninterrupted run.
 */
export const EVAL_METRICS = [
  // The seed's five figures, in their places (docs/socratic_metrics.md; socratic_pattern_score is now
  // socratic_score, the headline).
  "socratic_question_rate",
  "socratic_score",
  "style_consistency",
  "dialogue_flow",
  "response_consistency",
  // Added by issue #15: distinct-n of the K samples, and the failures counted apart (shares of the replies).
  "distinct_2",
  "telling_rate",
  "degenerate_rate",
  "cut_off_rate",
  "closed_question_rate",
  "leading_question_rate",
  "rhetorical_question_rate",
  "quiz_question_rate",
  "stacked_question_rate",
  "off_topic_question_rate",
  "no_question_rate",
] as const;

export const CSV_COLUMNS = [
  "step",
  "epoch",
  "loss",
  "learning_rate",
  "grad_norm",
  // Real (non-padding) tokens per second of optimizer-step time, and the padding positions computed beside
  // them (src/train/loop.ts: eval, generation and checkpoints are not in the clock).
  "tokens_per_second",
  "padded_tokens_per_second",
  "elapsed_seconds",
  "eval_loss",
  "eval_perplexity",
  ...EVAL_METRICS.map((m) => `eval_${m}`),
] as const;

export type CsvRow = Partial<Record<(typeof CSV_COLUMNS)[number], number>>;

function cell(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return "";
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(8)));
}

export function formatRow(row: CsvRow): string {
  return CSV_COLUMNS.map((c) => cell(row[c])).join(",") + "\n";
}

export function parseCsv(text: string): { header: string[]; rows: Record<string, number | undefined>[] } {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (!lines.length) return { header: [], rows: [] };
  const header = lines[0].split(",");
  const rows = lines.slice(1).map((l) => {
    const cells = l.split(",");
    const r: Record<string, number | undefined> = {};
    header.forEach((h, i) => r[h] = cells[i] === undefined || cells[i] === "" ? undefined : Number(cells[i]));
    return r;
  });
  return { header, rows };
}

export class MetricsCsv {
  private constructor(private readonly file: Deno.FsFile, readonly path: string) {}

  /** Opens the CSV: a new file with the header, or (resume) the old one truncated to rows with step <= keepUpTo. */
  static async open(path: string, resumeFromStep?: number): Promise<MetricsCsv> {
    const header = CSV_COLUMNS.join(",") + "\n";
    if (resumeFromStep !== undefined) {
      let kept = header;
      try {
        const old = parseCsv(await Deno.readTextFile(path));
        for (const r of old.rows) {
          if ((r.step ?? Infinity) <= resumeFromStep) kept += formatRow(r as CsvRow);
        }
      } catch { /* no old file: start fresh */ }
      const { writeFileAtomic } = await import("../util/atomic.ts");
      await writeFileAtomic(path, kept);
    } else {
      await Deno.writeTextFile(path, header);
    }
    const file = await Deno.open(path, { append: true });
    return new MetricsCsv(file, path);
  }

  /** Appends one row and flushes it to disk. */
  async append(row: CsvRow): Promise<void> {
    const bytes = new TextEncoder().encode(formatRow(row));
    let off = 0;
    while (off < bytes.length) off += await this.file.write(bytes.subarray(off));
    await this.file.sync();
  }

  close(): void {
    this.file.close();
  }
}
