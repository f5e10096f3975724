/** The subcommand table. Each module exports `run(args): Promise<exitCode>`. */
export interface CommandModule {
  run(args: string[]): Promise<number>;
}

export const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  train: { summary: "fine-tune LoRA adapters on a dialogue file", load: () => import("./train.ts") },
  eval: { summary: "evaluate a model (+adapter) on a dialogue file", load: () => import("./eval.ts") },
  score: { summary: "Socratic figures of the replies in a dialogue file", load: () => import("./score.ts") },
  chat: { summary: "talk to a model (+adapter) in the terminal", load: () => import("./chat.ts") },
  generate: { summary: "a reply to every record of a dialogue file", load: () => import("./generate.ts") },
  serve: { summary: "HTTP API that runs evaluation jobs", load: () => import("./serve.ts") },
  bench: { summary: "kernel and step throughput, memory plan", load: () => import("./bench.ts") },
  quantize: { summary: "fetch + NF4-quantize + cache a model", load: () => import("./quantize.ts") },
  merge: { summary: "fold an adapter into the base weights", load: () => import("./merge.ts") },
  info: { summary: "WebGPU adapter, features, limits, resolved config", load: () => import("./info.ts") },
  report: { summary: "re-render metrics_plot.png/.html from a run's CSV", load: () => import("./report.ts") },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(10)}${v.summary}`);
  return `usage: maieutic <subcommand> [options]   (each subcommand has --help)\n\nsubcommands:\n${
    lines.join("\n")
  }`;
}
