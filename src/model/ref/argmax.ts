/** Row argmax of [rows, V] values, the smallest index on ties (kernels/argmax.wgsl's rule). */
export function argmaxRef(x: ArrayLike<number>, rows: number, V: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < V; c++) if (x[r * V + c] > x[r * V + best]) best = c;
    return best;
  });
}
