// The model's ends shared by the engine and the decoder (src/model/ends.ts): the token-id check.
import { tokenIds } from "../../src/model/ends.ts";

function throwsRange(f: () => unknown, want: string): void {
  try {
    f();
  } catch (e) {
    if (e instanceof RangeError && e.message.includes(want)) return;
    throw new Error(`expected a RangeError with "${want}", got ${e}`);
  }
  throw new Error(`expected a RangeError with "${want}"`);
}

Deno.test("tokenIds: ids in [0, V) pass as u32; the first bad one is named with its position", () => {
  const ids = tokenIds([0, 5, 9], 10);
  if (!(ids instanceof Uint32Array) || ids.join() !== "0,5,9") throw new Error(`got ${ids}`);
  throwsRange(() => tokenIds([1, 10, -1], 10), "token id 10 at position 1 is outside the vocabulary (10)");
  throwsRange(() => tokenIds([-1], 10), "token id -1 at position 0");
  throwsRange(() => tokenIds([2.5], 10), "token id 2.5 at position 0");
});

Deno.test("tokenIds: n takes the first n ids (the engine's batch) and a short array fails", () => {
  const ids = tokenIds(Int32Array.from([3, 4, 99]), 10, 2);
  if (ids.join() !== "3,4") throw new Error(`got ${ids}`);
  throwsRange(() => tokenIds(Int32Array.from([3]), 10, 2), "token id undefined at position 1");
});
