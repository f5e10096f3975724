/**
 * The Hub token, from HUGGINGFACE_API_KEY (or HF_TOKEN, as huggingface_hub accepts). `.env` has been merged
 * into the environment by then (src/cli/env.ts, at start-up). Never printed or written anywhere.
 */
export function hubToken(): string | undefined {
  return Deno.env.get("HUGGINGFACE_API_KEY") || Deno.env.get("HF_TOKEN") || undefined;
}
