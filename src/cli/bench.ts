/** `maieutic bench`: not built yet (see the open issues). */
import { CONFIG_HELP, CONFIG_OPTIONS, parse } from "./args.ts";

const USAGE = "maieutic bench [options]";

export function run(args: string[]): Promise<number> {
  const { values } = parse(args, CONFIG_OPTIONS, USAGE);
  if (values.help) {
    console.log(`${USAGE}\n\n${CONFIG_HELP}`);
    return Promise.resolve(0);
  }
  console.error("maieutic bench is not implemented yet");
  return Promise.resolve(1);
}
