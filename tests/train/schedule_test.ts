import { lrAtStep, planSteps } from "../../src/train/schedule.ts";
import { TrainingSchema } from "../../src/config/schema.ts";

const golden = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/golden/schedule.json", import.meta.url)),
);
const variant = golden
  .step_math_variants[
    "later transformers with set_initial_training_values using ceil (not run; see README)"
  ];

Deno.test("step math of the seed run (37 examples) matches transformers' ceil variant", () => {
  const t = TrainingSchema.parse({});
  const plan = planSteps(golden.inputs.num_examples, t);
  if (plan.stepsPerEpoch !== variant.num_update_steps_per_epoch) {
    throw new Error(`steps/epoch ${plan.stepsPerEpoch}`);
  }
  if (plan.totalSteps !== variant.max_steps) throw new Error(`total ${plan.totalSteps}`);
  if (plan.warmupSteps !== variant.warmup_steps) throw new Error(`warmup ${plan.warmupSteps}`);
  if (plan.epochs !== 30) throw new Error(`epochs ${plan.epochs}`);
});

Deno.test("LR at every optimizer step equals schedule.json to 1e-12", () => {
  const t = TrainingSchema.parse({});
  const plan = planSteps(golden.inputs.num_examples, t);
  const want: number[] = variant.lr_at_optimizer_step;
  if (want.length !== plan.totalSteps) throw new Error("length");
  want.forEach((w, i) => {
    const got = lrAtStep(i + 1, plan, t);
    if (Math.abs(got - w) > 1e-12) throw new Error(`step ${i + 1}: ${got} != ${w}`);
  });
  if (lrAtStep(1, plan, t) !== 0) throw new Error("step 1 must use lr 0 with warmup");
});

Deno.test("cosine_with_restarts with one cycle equals cosine; the 4.45 30-step list too", () => {
  const base = TrainingSchema.parse({ max_steps: 30 });
  const plan = { ...planSteps(37, base), totalSteps: 30, warmupSteps: 8 };
  const cos = TrainingSchema.parse({ lr_scheduler_type: "cosine" });
  const want: number[] = golden.lr_at_optimizer_step;
  want.forEach((w, i) => {
    const a = lrAtStep(i + 1, plan, base);
    const b = lrAtStep(i + 1, plan, cos);
    if (Math.abs(a - w) > 1e-12 || Math.abs(b - w) > 1e-12) {
      throw new Error(`step ${i + 1}: ${a} ${b} != ${w}`);
    }
  });
});

Deno.test("other schedules: linear decays to 0, constant_with_warmup holds, constant is flat", () => {
  const plan = { batchesPerEpoch: 10, stepsPerEpoch: 2, totalSteps: 20, warmupSteps: 4, epochs: 10 };
  const lin = TrainingSchema.parse({ lr_scheduler_type: "linear", learning_rate: 1 });
  if (lrAtStep(3, plan, lin) !== 0.5 || Math.abs(lrAtStep(13, plan, lin) - 0.5) > 1e-15) {
    throw new Error("linear");
  }
  const cw = TrainingSchema.parse({ lr_scheduler_type: "constant_with_warmup", learning_rate: 1 });
  if (lrAtStep(2, plan, cw) !== 0.25 || lrAtStep(20, plan, cw) !== 1) throw new Error("constant_with_warmup");
  const c = TrainingSchema.parse({ lr_scheduler_type: "constant", learning_rate: 1 });
  if (lrAtStep(1, plan, c) !== 1) throw new Error("constant");
  const two = TrainingSchema.parse({ num_cycles: 2, learning_rate: 1 });
  // Two hard restarts: the LR is back at the peak half-way through the decay.
  if (Math.abs(lrAtStep(4 + 8 + 1, plan, two) - 1) > 1e-12) throw new Error("restart");
});
