/**
 * Kernel parameters as typed data. Each kernel declares its uniform `Params` once, in TypeScript, beside its
 * wrapper (`params: { rows: "u32", eps: "f32" }`); src/gpu/kernel.ts generates the WGSL `struct Params` from that
 * declaration (so the .wgsl file has none), and Recorder.dispatch encodes the named values a call site passes,
 * checked against it: every field present, no other, u32 a non-negative integer below 2^32, i32 an integer in
 * its range, f32 finite. Fields are 4-byte scalars only, so the host layout is consecutive 4-byte words in
 * declaration order (WGSL's uniform layout for such a struct; the block is padded to 16 bytes).
 */
export type ParamType = "u32" | "i32" | "f32";

/** Field name -> WGSL scalar type, in the struct's order. */
export type ParamSchema = Readonly<Record<string, ParamType>>;

/** The values of a kernel's Params: every field of the schema, by name. */
export type ParamsOf<S extends ParamSchema> = { readonly [K in keyof S]: number };

/** The WGSL declaration of a schema, on one line (the host prepends it to the kernel: one line of prologue). */
export function paramsStruct(schema: ParamSchema): string {
  const fields = Object.entries(schema).map(([name, type]) => `${name}: ${type}`);
  if (!fields.length) throw new RangeError("a Params schema needs at least one field");
  return `struct Params { ${fields.join(", ")} }`;
}

const fieldLists = new WeakMap<ParamSchema, [string, ParamType][]>();

function fieldsOf(schema: ParamSchema): [string, ParamType][] {
  let f = fieldLists.get(schema);
  if (!f) fieldLists.set(schema, f = Object.entries(schema));
  return f;
}

/** Why a value does not fit its field's type, or null when it does. */
function misfit(type: ParamType, v: unknown): string | null {
  if (typeof v !== "number") return `a number expected, got ${typeof v}`;
  if (type === "f32") {
    return Number.isFinite(Math.fround(v)) ? null : `a finite f32 expected, got ${v}`;
  }
  if (!Number.isInteger(v)) return `an integer (${type}) expected, got ${v}`;
  if (type === "u32") return v >= 0 && v <= 0xffffffff ? null : `a u32 in [0, 2^32) expected, got ${v}`;
  return v >= -0x80000000 && v <= 0x7fffffff ? null : `an i32 expected, got ${v}`;
}

/**
 * The uniform block of `values` for `schema`. Throws a RangeError naming the kernel (`where`, e.g.
 * "kernels/rope.wgsl") and the field when a field is missing, unknown or of the wrong type.
 */
export function encodeParams(
  where: string,
  schema: ParamSchema,
  values: Readonly<Record<string, number>>,
): Uint8Array<ArrayBuffer> {
  const fields = fieldsOf(schema);
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const dv = new DataView(buf);
  let given = 0;
  for (const key in values) {
    if (!(key in schema)) {
      throw new RangeError(
        `${where}: unknown param "${key}" (its Params: ${Object.keys(schema).join(", ")})`,
      );
    }
    given++;
  }
  for (let i = 0; i < fields.length; i++) {
    const [name, type] = fields[i];
    const v = values[name];
    if (v === undefined) {
      throw new RangeError(`${where}: param "${name}" (${type}) missing`);
    }
    const bad = misfit(type, v);
    if (bad) throw new RangeError(`${where}: param "${name}": ${bad}`);
    if (type === "u32") dv.setUint32(i * 4, v, true);
    else if (type === "i32") dv.setInt32(i * 4, v, true);
    else dv.setFloat32(i * 4, v, true);
  }
  if (given !== fields.length) {
    throw new RangeError(`${where}: ${given} params given, Params has ${fields.length}`);
  }
  return new Uint8Array(buf);
}
