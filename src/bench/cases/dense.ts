/**
 * Dense matmul cases: the lm_head's kernel and the dense projections (load_in_4bit false) in the three
 * layouts of a training step (src/gpu/ops/matmul.ts), in f32 and, where the device has shader-f16, f16;
 * and the decode-sized one-row products (the head's product per vocab chunk, the GPU family's matvec).
 */
import { createBuffer } from "../../gpu/buffers.ts";
import { type Elem, matmul, matmulFlops, type MatmulShape } from "../../gpu/ops/matmul.ts";
import type { CaseContext, KernelCase } from "./context.ts";

/** A projection-shaped weight [QD, H] in f32 and f16. */
export interface DenseWeights {
  w32: GPUBuffer;
  w16: GPUBuffer;
}

export function denseWeights(x: CaseContext): DenseWeights {
  return {
    w32: x.fill.f32("w32", x.QD * x.H, -0.05, 0.05),
    w16: x.fill.f16("w16", x.QD * x.H, -0.05, 0.05),
  };
}

/** NT (x·Wᵀ, a projection's forward), NN (dy·W, its input gradient), TN (dyᵀ·x, a weight gradient). */
export function denseCases(x: CaseContext, w: DenseWeights): KernelCase[] {
  const { gpu, N, H, QD, y } = x;
  const big = createBuffer(gpu, "c.big", QD * H * 4);
  const layouts: [string, string, Omit<MatmulShape, "aType" | "bType">, GPUBuffer][] = [
    ["NT", `C[${N},${QD}] = A[${N},${H}]·B[${QD},${H}]ᵀ`, { M: N, N: QD, K: H }, y],
    // W stored K×N.
    ["NN", `C[${N},${H}] = A[${N},${QD}]·B[${QD},${H}]`, { M: N, N: H, K: QD, transB: true }, y],
    // Both stored with tokens as rows.
    [
      "TN",
      `C[${QD},${H}] = A[${N},${QD}]ᵀ·B[${N},${H}]`,
      { M: QD, N: H, K: N, transA: true, transB: true },
      big,
    ],
  ];
  // f16 operands only where the device has shader-f16 (not on GL adapters, nor with MAIEUTIC_F16=0).
  const elems: Elem[] = gpu.f16 ? ["f32", "f16"] : ["f32"];
  return elems.flatMap((t) =>
    layouts.map(([tag, shape, s, C]): KernelCase => {
      const A = t === "f32" ? x.x32 : x.x16;
      const B = tag === "TN" ? A : t === "f32" ? w.w32 : w.w16;
      const eb = t === "f32" ? 4 : 2;
      const full = { ...s, aType: t, bType: t };
      return {
        name: `matmul ${tag} ${t}`,
        family: "matmul",
        shape,
        flop: matmulFlops(full),
        bytes: (s.M * s.K + s.N * s.K) * eb + s.M * s.N * 4,
        // Register-blocked kernels share A's rows through the subgroup; two layouts are compared.
        subgroups: (tag === "NT" && t === "f32") || (tag === "NN" && t === "f16"),
        record: (rec) => matmul(rec, A, B, C, full),
      };
    })
  );
}

/** One row with an f16 weight (decode): the GPU family's matvec.wgsl forced, and the device's own choice. */
export function denseDecodeCases(x: CaseContext, w: DenseWeights): KernelCase[] {
  if (!x.gpu.f16) return [];
  const { H, QD, x16, y } = x;
  const s = { M: 1, N: QD, K: H, aType: "f16", bType: "f16" } as const;
  const common = { family: "matmul", flop: 2 * QD * H, bytes: H * 2 + QD * H * 2 + QD * 4, subgroups: true };
  return [
    {
      name: "matvec NT f16 1 row (tiled family)",
      shape: `C[1,${QD}] = A[1,${H}]·B[${QD},${H}]ᵀ, f16 B, matvec.wgsl`,
      ...common,
      record: (rec) => matmul(rec, x16, w.w16, y, { ...s, kernels: "tiled" }),
    },
    {
      name: "matmul NT f16 1 row",
      shape: `C[1,${QD}] = A[1,${H}]·B[${QD},${H}]ᵀ, f16 B (decode: the head's product per vocab chunk)`,
      ...common,
      record: (rec) => matmul(rec, x16, w.w16, y, s),
    },
  ];
}
