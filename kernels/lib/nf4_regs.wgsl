// NF4 dequantization in registers, shared by the register-blocked kernels (nf4_matmul_regblock.wgsl,
// nf4_matmul_dx_regblock.wgsl), which the host appends it to (`// #include nf4_regs`, src/gpu/kernel.ts).
// Dequantization follows bitsandbytes (functional.py dequantize_4bit with double quantization): the element
// is code[nibble] · absmax of its 64-block, absmax = dynamic_map[qabsmax] · absmax2[block / 256] + offset,
// the product rounded first. Rounding to OP_T: a compiler folds f32(f16(v)) back to v in registers, so rnd4
// rounds in integer arithmetic (nearest even to 11 significant bits for |v| ≥ 2^-14, to a multiple of 2^-24
// below, after the clamp to ±OP_MAX), identical to the f32 → f16 conversion for every finite input.
// absmax_of and the codes come from lib/nf4_dequant.wgsl (its bindings and Params fields); the kernel also
// declares the override F16 (0: f32 operands, unrounded).

// #include nf4_dequant

// v clamped to ±OP_MAX and rounded to the operand type (f16: nearest even), as f32.
fn rnd4(v: vec4f) -> vec4f {
  let c = clamp(v, vec4f(-OP_MAX), vec4f(OP_MAX));
  if (F16 == 0u) { return c; }
  let b = bitcast<vec4u>(c);
  let normal = bitcast<vec4f>((b + vec4u(0xfffu) + ((b >> vec4u(13u)) & vec4u(1u))) & vec4u(0xffffe000u));
  let subnormal = round(c * 16777216.0) * 5.9604644775390625e-8;
  return select(subnormal, normal, abs(c) >= vec4f(6.103515625e-05));
}

// The 16 NF4 values held in registers, q0 = code[0..4), ..., q3 = code[12..16) (a load per code would cost
// more than the product on CPU adapters).
struct Code { q0: vec4f, q1: vec4f, q2: vec4f, q3: vec4f }

fn code_regs() -> Code {
  return Code(vec4f(tables[0], tables[1], tables[2], tables[3]), vec4f(tables[4], tables[5], tables[6], tables[7]),
              vec4f(tables[8], tables[9], tables[10], tables[11]),
              vec4f(tables[12], tables[13], tables[14], tables[15]));
}

fn pick(q: vec4f, b0: vec4<bool>, b1: vec4<bool>) -> vec4f {
  return select(select(vec4f(q.x), vec4f(q.y), b0), select(vec4f(q.z), vec4f(q.w), b0), b1);
}

// code[c] for four codes: a select tree on the bits of c.
fn lut4(c: vec4u, t: Code) -> vec4f {
  let b0 = (c & vec4u(1u)) != vec4u(0u);
  let b1 = (c & vec4u(2u)) != vec4u(0u);
  let b2 = (c & vec4u(4u)) != vec4u(0u);
  let b3 = (c & vec4u(8u)) != vec4u(0u);
  return select(select(pick(t.q0, b0, b1), pick(t.q1, b0, b1), b2),
                select(pick(t.q2, b0, b1), pick(t.q3, b0, b1), b2), b3);
}
