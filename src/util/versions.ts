/** Versions recorded in summaries and training_config.json. */
export const MAIEUTIC_VERSION = "0.1.0";

export function versions(): Record<string, string> {
  return {
    maieutic: MAIEUTIC_VERSION,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
}
