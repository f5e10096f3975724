/**
 * Deno Deploy entry point (see deploy/README.md): the cron that triggers the scheduled eval job on the GPU VM
 * and the HTTP app that receives its signed callback. All logic is in ./app.ts (tests import that; this file
 * only has the side effects Deploy needs at the top level: Deno.cron must be registered here, unconditionally,
 * before Deno.serve).
 *
 * Locally: deno run -A --unstable-kv --unstable-cron deploy/main.ts  (PORT, MAIEUTIC_HOSTNAME, MAIEUTIC_KV_PATH
 * optional; MAIEUTIC_KV_PATH=:memory: for a throwaway store).
 */
import { createApp, envFrom } from "./app.ts";

const env = envFrom((k) => Deno.env.get(k));
const kv = await Deno.openKv(Deno.env.get("MAIEUTIC_KV_PATH") || undefined);
const app = createApp(env, kv);

Deno.cron(
  "maieutic scheduled eval",
  env.schedule,
  { backoffSchedule: [60_000, 300_000] },
  () => app.scheduled(),
);

// On Deploy the platform picks the address; locally PORT (and MAIEUTIC_HOSTNAME, default 127.0.0.1) choose it.
const port = Deno.env.get("PORT");
Deno.serve({
  ...(port ? { port: Number(port), hostname: Deno.env.get("MAIEUTIC_HOSTNAME") ?? "127.0.0.1" } : {}),
  onListen: ({ hostname, port }) =>
    console.log(`maieutic deploy app listening on http://${hostname}:${port}`),
}, app.handler);
