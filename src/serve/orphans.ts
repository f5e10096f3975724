/**
 * Eval children that outlive their server. Two defences (issue #18):
 *  - on Linux the child is started through `setpriv --pdeathsig KILL` (util-linux), so the kernel kills it
 *    when the server's process dies, however it dies;
 *  - a restarted server finds what is left of a job's runs by the MAIEUTIC_JOB_ID=<id> in each process's
 *    initial environment (/proc/<pid>/environ), not by a pid it may not have had time to save, and kills
 *    them and waits for them to be gone before the job is run again (so a retry never runs beside an orphan).
 */

/** The program prefix that ties a child's life to this process, or [] where that is not available. */
export function deathSignalPrefix(): string[] {
  if (Deno.build.os !== "linux") return [];
  for (const p of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      if (Deno.statSync(p).isFile) return [p, "--pdeathsig", "KILL", "--"];
    } catch { /* not here */ }
  }
  return [];
}

/** The start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

/** Processes (of this user: others' environ is unreadable) started for `jobId`. Linux only. */
export async function findJobProcesses(jobId: string): Promise<number[]> {
  if (Deno.build.os !== "linux") return [];
  const needle = `MAIEUTIC_JOB_ID=${jobId}`;
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const env = await Deno.readTextFile(`/proc/${e.name}/environ`);
      if (env.split("\0").includes(needle) && running(Number(e.name))) out.push(Number(e.name));
    } catch { /* gone, or not ours */ }
  }
  return out;
}

/** SIGKILLs every leftover process of `jobId` and waits (up to `waitMs`) until they are gone. */
export async function reapJob(jobId: string, waitMs = 5000): Promise<number[]> {
  const pids = await findJobProcesses(jobId);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  const end = Date.now() + waitMs;
  while (pids.some(running) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return pids;
}
