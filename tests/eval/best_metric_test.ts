// training.metric_for_best_model accepts the loss or a Socratic figure where higher is better (src/eval/in_training.ts).
import assert from "node:assert/strict";
import { BEST_MODEL_FIGURES, checkBestMetric, socraticColumns } from "../../src/eval/in_training.ts";
import { UsageError } from "../../src/util/errors.ts";
import { EVAL_METRICS } from "../../src/report/metrics_csv.ts";

Deno.test("metric_for_best_model: loss, perplexity or a higher-is-better figure; rates and typos exit 2", () => {
  checkBestMetric("eval_loss", 0);
  checkBestMetric("eval_perplexity", 0);
  for (const f of BEST_MODEL_FIGURES) {
    assert.ok((EVAL_METRICS as readonly string[]).includes(f), f);
    checkBestMetric(`eval_${f}`, 32);
  }
  assert.throws(
    () => checkBestMetric("eval_degenerate_rate", 32),
    (e) => e instanceof UsageError && /higher is better/.test(e.message),
  );
  assert.throws(
    () => checkBestMetric("eval_socratic_pattern_score", 32),
    (e) => e instanceof UsageError && /not a column/.test(e.message),
  );
  assert.throws(
    () => checkBestMetric("eval_socratic_score", 0),
    (e) => e instanceof UsageError && /eval_generate_samples/.test(e.message),
  );
});

Deno.test("socraticColumns: the eval_* figures of a log entry, null without any", () => {
  assert.equal(socraticColumns(undefined), null);
  assert.equal(socraticColumns({ step: 3, eval_loss: 1.2 }), null);
  assert.deepEqual(
    socraticColumns({ step: 3, eval_loss: 1.2, eval_socratic_score: 0.5, eval_degenerate_rate: 0.25 }),
    {
      eval_socratic_score: 0.5,
      eval_degenerate_rate: 0.25,
    },
  );
});
