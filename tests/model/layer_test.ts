// The layer recorder's shapes (src/model/layer.ts); its forward is compared with the engine's goldens and the
// float64 reference in engine_test.ts / engine_paths_test.ts, and the decoder's use of it in decode_test.ts.
import { attentionHeads } from "../../src/model/layer.ts";
import { goldenConfig } from "../helpers/golden.ts";

Deno.test("attentionHeads: Gemma-2's scale and softcap; the window only on the sliding (even) layers", async () => {
  const c = await goldenConfig();
  const even = attentionHeads(c, 0), odd = attentionHeads(c, 1);
  if (even.window !== c.sliding_window || odd.window !== null) {
    throw new Error(`windows ${even.window}, ${odd.window} (sliding_window ${c.sliding_window})`);
  }
  if (even.scale !== c.query_pre_attn_scalar ** -0.5 || even.scale === c.head_dim ** -0.5) {
    throw new Error(
      `scale ${even.scale}: query_pre_attn_scalar ${c.query_pre_attn_scalar}, head_dim ${c.head_dim}`,
    );
  }
  const want = [c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.attn_logit_softcapping ?? null];
  const got = [odd.Hq, odd.Hkv, odd.D, odd.softcap];
  if (got.join() !== want.join()) throw new Error(`heads ${got} != ${want}`);
  const uncapped = attentionHeads({ ...c, attn_logit_softcapping: null }, 1);
  if (uncapped.softcap !== null) throw new Error(`softcap ${uncapped.softcap} for a config without one`);
});
