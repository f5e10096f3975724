/** Synthetic run directories for the report tests: a CSV shaped like the trainer's (logging rows + eval rows). */
import { join } from "node:path";
import { CSV_COLUMNS, type CsvRow, EVAL_METRICS, formatRow } from "../../src/report/metrics_csv.ts";

/** `n` logging rows (step 1..n) with an eval row every `evalEvery` steps; deterministic. */
export function syntheticRows(n: number, evalEvery = 10): CsvRow[] {
  const rows: CsvRow[] = [];
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const warm = Math.max(1, Math.ceil(n * 0.25));
  for (let step = 1; step <= n; step++) {
    const lr = step <= warm
      ? 8e-5 * (step - 1) / warm
      : 8e-5 * 0.5 * (1 + Math.cos(Math.PI * (step - warm) / (n - warm || 1)));
    const row: CsvRow = {
      step,
      epoch: step / Math.max(1, n / 30),
      loss: 0.35 + 3.2 * Math.exp(-step / Math.max(3, n / 6)) + 0.08 * (rand() - 0.5),
      learning_rate: lr,
      grad_norm: 0.4 + 1.6 * Math.exp(-step / Math.max(3, n / 8)) + 0.3 * rand(),
      tokens_per_second: 1800 + 150 * Math.sin(step / 7) + 60 * rand(),
      elapsed_seconds: step * 2.1,
    };
    rows.push(row);
    if (step % evalEvery === 0) {
      const t = step / n;
      const ev: CsvRow = {
        step,
        epoch: row.epoch,
        eval_loss: 0.6 + 2.8 * Math.exp(-step / Math.max(3, n / 5)) + 0.12 * t * t,
      };
      ev.eval_perplexity = Math.exp(ev.eval_loss!);
      EVAL_METRICS.forEach((m, i) => {
        ev[`eval_${m}` as keyof CsvRow] = Math.min(
          1,
          Math.max(0, 0.15 + 0.12 * i + 0.55 * t + 0.05 * (rand() - 0.5)),
        );
      });
      rows.push(ev);
    }
  }
  return rows;
}

export function csvText(rows: CsvRow[]): string {
  return CSV_COLUMNS.join(",") + "\n" + rows.map(formatRow).join("");
}

/** Creates models/{version}-like run dir with logs/training_metrics.csv (+ model/training_config.json). */
export async function makeRunDir(
  csv: string,
  opts: { version?: string; modelName?: string; maxGradNorm?: number } = {},
): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "maieutic-report-" });
  const dir = join(root, opts.version ?? "1gouki");
  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  await Deno.writeTextFile(join(dir, "logs", "training_metrics.csv"), csv);
  if (opts.modelName !== undefined) {
    await Deno.mkdir(join(dir, "model"), { recursive: true });
    await Deno.writeTextFile(
      join(dir, "model", "training_config.json"),
      JSON.stringify({
        model: { name: opts.modelName },
        training: { max_grad_norm: opts.maxGradNorm ?? 1.0 },
      }),
    );
  }
  return dir;
}
