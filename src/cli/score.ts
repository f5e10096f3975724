/** `maieutic score FILE`: the Socratic figures of the last model turn of every record of a dialogue file. */
import { parse } from "./args.ts";
import { UsageError } from "../util/errors.ts";
import { loadScoreRecords } from "../eval/score_file.ts";
import { formatScoreReport, scoreRecords } from "../eval/score_report.ts";
import { writeJsonAtomic } from "../util/atomic.ts";

const USAGE = "maieutic score FILE [--json] [--out FILE] [--all-turns] [--lowest N]";

const HELP = `${USAGE}

Scores the last model (assistant) turn of every record of FILE, with the earlier turns as its context, with
the Socratic figures of docs/socratic_metrics.md. FILE is any file the data loader reads: chat, ShareGPT or
pairs records, a JSON array or JSON Lines (data/dialogue/README.md), so the replies of any system can be
scored. Empty or odd replies are scored (a degenerate reply scores 0), never rejected; a malformed file exits 2
naming the record and field. Optional record fields: "reference" (a gold reply; its socratic_score is shown
beside the reply's), "finish" ("stop" or "length": a reply cut off at the token limit is degenerate),
"samples" (more replies to the same context: response_consistency and distinct_2), and the labelled set's
"label"/"split"/"context_id" (then the AUROC of good replies against each other class is reported).

Per-reply figures, each in [0, 1], higher = better: socratic_score (the headline), open_question,
no_telling, uptake, dialogue_flow, register, non_degenerate.

  --json        print one JSON object {"records": [{"index", "metrics": {...}, ...}], "summary": {...}}
  --out FILE    also write that JSON object to FILE (atomically)
  --all-turns   score every model turn of every record, each with the turns before it as its context
  --lowest N    how many lowest-scoring replies the table lists (default 5)

Examples:
  maieutic score data/dialogue/processed/1gouki.json --all-turns
  maieutic score data/socratic_eval/labelled.jsonl --json --out /tmp/labelled_scores.json`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      json: { type: "boolean" },
      out: { type: "string" },
      lowest: { type: "string" },
      "all-turns": { type: "boolean" },
    },
    USAGE,
    true,
  );
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `${
        positionals.length ? `expected one FILE, got ${positionals.length}` : "missing FILE"
      }\nusage: ${USAGE}`,
    );
  }
  let lowest = 5;
  if (values.lowest !== undefined) {
    const v = String(values.lowest);
    if (!/^\s*\d+\s*$/.test(v)) throw new UsageError(`--lowest expects an integer >= 0, got "${v}"`);
    lowest = Number(v);
  }
  if (values.out !== undefined && (typeof values.out !== "string" || values.out.trim() === "")) {
    throw new UsageError(`--out expects a file path\nusage: ${USAGE}`);
  }
  const file = positionals[0];
  const records = await loadScoreRecords(file, { allTurns: Boolean(values["all-turns"]) });
  const report = scoreRecords(file, records);
  if (typeof values.out === "string") await writeJsonAtomic(values.out, report);
  console.log(
    values.json
      ? JSON.stringify(report)
      : formatScoreReport(report, records.map((r) => r.sample.generated), lowest),
  );
  return 0;
}
