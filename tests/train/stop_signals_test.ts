// What SIGTERM and Ctrl-C do to a training run (src/train/stop_signals.ts), driven through receive().
import { EXIT_CODE, type StopSignal, StopSignals } from "../../src/train/stop_signals.ts";

function harness(signals: StopSignal[]) {
  const events: string[] = [];
  const s = new StopSignals();
  s.install({
    onStop: (sig) => events.push(`stop ${sig}`),
    onForce: () => events.push("force"),
    exit: (code) => events.push(`exit ${code}`),
  });
  try {
    for (const sig of signals) s.receive(sig);
  } finally {
    s.uninstall();
  }
  return { events: events.join(", "), signal: s.signal, stopping: s.stopping };
}

Deno.test("exit codes: SIGTERM 143, SIGINT 130 (128 + signal number, as a shell reports them)", () => {
  if (EXIT_CODE.SIGTERM !== 143 || EXIT_CODE.SIGINT !== 130) throw new Error(JSON.stringify(EXIT_CODE));
});

Deno.test("the first signal asks for a stop after the step; a second Ctrl-C exits at once", () => {
  const one = harness(["SIGINT"]);
  if (one.events !== "stop SIGINT" || !one.stopping || one.signal !== "SIGINT") {
    throw new Error(JSON.stringify(one));
  }
  const two = harness(["SIGINT", "SIGINT"]);
  if (two.events !== "stop SIGINT, force, exit 130") throw new Error(two.events);
  // Ctrl-C after a preemption notice is a user who does not want to wait either.
  const termInt = harness(["SIGTERM", "SIGINT"]);
  if (termInt.events !== "stop SIGTERM, force, exit 130" || termInt.signal !== "SIGTERM") {
    throw new Error(termInt.events);
  }
});

Deno.test("a repeated SIGTERM changes nothing: the run still checkpoints and exits 143", () => {
  const r = harness(["SIGTERM", "SIGTERM", "SIGTERM"]);
  if (r.events !== "stop SIGTERM" || r.signal !== "SIGTERM") throw new Error(r.events);
});

Deno.test("signals before install or after uninstall are not the run's", () => {
  const s = new StopSignals();
  s.receive("SIGINT");
  if (s.stopping) throw new Error("stopped without handlers");
});
