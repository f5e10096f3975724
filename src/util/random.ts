/**
 * The project's one PRNG: mulberry32 (Tommy Ettinger's 32-bit generator, uniform floats in [0, 1)) seeded through
 * a splitmix32-style finalizer (`mix32`), so every purpose (split, epoch order, generation, test data, the tiny
 * model's weights) draws from its own stream of one seed. Pure functions of their inputs: a resumed run replays.
 */

/** splitmix32-style finalizer: a well-mixed 32-bit value of x. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** mulberry32: uniform floats in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A PRNG for one purpose: different streams (split, epoch order, ...) of one seed are independent. */
export function seededRandom(seed: number, stream: number, sub = 0): () => number {
  const hi = Math.floor(seed / 4294967296);
  return mulberry32(mix32(mix32(mix32((seed >>> 0) ^ mix32(hi)) ^ stream) ^ mix32(sub + 0x632be5ab)));
}
