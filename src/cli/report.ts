/** `maieutic report`: not built yet (see the open issues). */
export function run(_args: string[]): Promise<number> {
  console.error("maieutic report is not implemented yet");
  return Promise.resolve(1);
}
