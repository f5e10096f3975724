// The benchmark's clocks (src/bench/timing.ts): when GPU timestamps are believed, what a profiled Recorder
// records, and that the timer falls back to the wall clock and says why. No speed is asserted.
import assert from "node:assert/strict";
import { createBuffer, upload } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { recordCopy, recordFma } from "../../src/bench/ceilings.ts";
import { GpuTimer, judgeTimestamps } from "../../src/bench/timing.ts";
import { randomArray, rng, testGpu } from "../helpers/gpu.ts";

Deno.test("judgeTimestamps: zeros, more than the wall clock, or a small fraction of it are not believed", () => {
  assert.deepEqual(judgeTimestamps(0, 5), { ok: false, reason: "the timestamp queries read zero" });
  assert.equal(judgeTimestamps(-1, 5).ok, false);
  assert.equal(judgeTimestamps(NaN, 5).ok, false);
  // GPU time is part of the wall time of the same submit (plus jitter).
  assert.equal(judgeTimestamps(5.2, 5).ok, true);
  assert.equal(judgeTimestamps(7, 5).ok, false);
  assert.match((judgeTimestamps(7, 5) as { reason: string }).reason, /exceed the wall clock/);
  // Ticks of 52 ns read as nanoseconds (Intel): 1/52 of the wall time.
  const intel = judgeTimestamps(10 / 52, 10);
  assert.equal(intel.ok, false);
  assert.match((intel as { reason: string }).reason, /tick is probably not 1 ns/);
  assert.equal(judgeTimestamps(4, 10).ok, true);
  // Below 1 ms of wall time the host's share dominates; the GPU figure is kept.
  assert.equal(judgeTimestamps(0.05, 0.8).ok, true);
});

Deno.test("Recorder profile mode: one span per dispatch, results unchanged", async () => {
  const gpu = await testGpu();
  const n = 1031;
  const src = upload(gpu, "src", randomArray(n * 4, rng(11)));
  const dst = createBuffer(gpu, "dst", n * 16);
  const out = createBuffer(gpu, "out", 64 * 4);
  const rec = new Recorder(gpu, { profile: true, maxProfiled: 8 });
  recordCopy(rec, src, dst, n);
  recordFma(rec, out, 64, 3);
  rec.copy(dst, 0, out, 0, 16); // a copy ends the pass; it is not a dispatch
  recordCopy(rec, src, dst, n);
  const spans = await rec.timings();
  assert.deepEqual(await readF32(gpu, dst), await readF32(gpu, src));
  if (gpu.timestamps) {
    assert.equal(spans.length, 3);
    assert.equal(rec.dispatchCount, 3);
    assert.deepEqual(spans.map((s) => s.name.split("#")[0]), [
      "bench/bench_copy.wgsl",
      "bench/bench_fma.wgsl",
      "bench/bench_copy.wgsl",
    ]);
    for (const s of spans) assert.ok(Number.isFinite(s.ns) && s.ns >= 0, `${s.name}: ${s.ns} ns`);
  } else {
    assert.deepEqual(spans, []);
  }
  // More dispatches than the query set holds: the rest run unprofiled, so the spans fall short of the count.
  const small = new Recorder(gpu, { profile: true, maxProfiled: 2 });
  for (let i = 0; i < 3; i++) recordCopy(small, src, dst, n);
  const some = await small.timings();
  assert.equal(small.dispatchCount, 3);
  assert.equal(some.length, gpu.timestamps ? 2 : 0);
  assert.deepEqual(await readF32(gpu, dst), await readF32(gpu, src));

  // More dispatches than one query set holds (2048): a second set is opened and resolved after the first.
  const many = new Recorder(gpu, { profile: true, maxProfiled: 4096 });
  const fmaEvery = 7;
  for (let i = 0; i < 2053; i++) {
    if (i % fmaEvery === 0) recordFma(many, out, 64, 3);
    else recordCopy(many, src, dst, n);
  }
  const all = await many.timings();
  if (gpu.timestamps) {
    assert.equal(all.length, 2053);
    assert.deepEqual(
      all.map((s, i) => [i, s.name.split("#")[0]]).filter(([i, name]) =>
        name !== ((i as number) % fmaEvery === 0 ? "bench/bench_fma.wgsl" : "bench/bench_copy.wgsl")
      ),
      [],
    );
    for (const s of all) assert.ok(Number.isFinite(s.ns) && s.ns >= 0);
    const sum = (xs: { ns: number }[]) => xs.reduce((a, s) => a + s.ns, 0);
    // Where the device's timestamps are real, the second set's spans are too (resolved at the right offset).
    if (sum(all.slice(0, 2048)) > 0) assert.ok(sum(all.slice(2048)) > 0, "second query set read zeros");
  } else {
    assert.deepEqual(all, []);
  }
});

Deno.test("GpuTimer: every figure says its clock; untrusted timestamps fall back to the wall clock", async () => {
  const gpu = await testGpu();
  const n = 1 << 16;
  const src = createBuffer(gpu, "src", n * 16);
  const dst = createBuffer(gpu, "dst", n * 16);
  const timer = new GpuTimer(gpu);
  const copy = (rec: Recorder) => recordCopy(rec, src, dst, n);
  const a = await timer.time(copy, { minMs: 20, maxReps: 8, label: "copy" });
  const b = await timer.time(copy, { minMs: 20, maxReps: 8, label: "copy", clock: "wall" });
  assert.equal(b.clock, "wall");
  for (const t of [a, b]) {
    assert.ok(t.ms > 0 && t.reps >= 1, JSON.stringify(t));
    // Either clock's figure fits in the wall time of its submit.
    assert.ok(t.ms * t.reps <= t.wallMs * 1.1 + 0.2, JSON.stringify(t));
  }
  const words = timer.describe();
  if (!gpu.timestamps) {
    assert.equal(a.clock, "wall");
    assert.match(words, /no timestamp-query feature/);
  } else if (a.clock === "wall") {
    // lavapipe: the queries exist and read zero.
    assert.match(
      words,
      /GPU timestamps not used: the timestamp queries read zero|fell back to the wall clock/,
    );
  } else {
    assert.match(words, /^GPU timestamps around each dispatch \(1 measurement/);
  }
  assert.deepEqual(timer.counts.timestamps + timer.counts.wall, 1); // the forced wall figure is not counted
});
