/**
 * A full V8 garbage collection on request. WebGPU bind groups (src/gpu/recorder.ts creates one per dispatch)
 * have no destroy(): their GPU-side descriptors go only when V8 collects the small JS wrappers, which it has
 * no memory-pressure reason to do. A long decode (the tiny model's ~60 dispatches per token, ~1000 tokens)
 * then piles up ~65k live bind groups and Mesa's lavapipe crashes (SIGSEGV); collecting now and then keeps
 * them few. `--expose-gc` is set at run time through node:v8 (Node's documented setFlagsFromString), so neither
 * `deno run` nor the compiled binary needs a flag; where that is unavailable this does nothing.
 */
import v8 from "node:v8";
import vm from "node:vm";

let gc: (() => void) | null | undefined;

export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      v8.setFlagsFromString("--expose-gc");
      const f = vm.runInNewContext("gc");
      gc = typeof f === "function" ? f as () => void : null;
    } catch {
      gc = null;
    }
  }
  gc?.();
}
