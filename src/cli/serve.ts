/** `maieutic serve`: not built yet (see the open issues). */
export function run(_args: string[]): Promise<number> {
  console.error("maieutic serve is not implemented yet");
  return Promise.resolve(1);
}
