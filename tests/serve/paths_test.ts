import { join } from "node:path";
import { isInside, makeRoots, PathError, resolveAdapter, resolveData } from "../../src/serve/paths.ts";
import { assert, assertEq, makeTree } from "./helpers.ts";

Deno.test("isInside: strict containment, no prefix tricks", () => {
  assert(isInside("/a/b", "/a/b/c"), "child");
  assert(isInside("/a/b", "/a/b/..c"), "..c is a name");
  assert(!isInside("/a/b", "/a/b"), "root itself");
  assert(!isInside("/a/b", "/a/bc"), "sibling with common prefix");
  assert(!isInside("/a/b", "/a"), "parent");
});

Deno.test("resolveData / resolveAdapter: confinement, symlinks, checkpoint names, cwd-relative paths", async () => {
  const t = await makeTree();
  try {
    const roots = await makeRoots([t.data], t.models, t.root);
    const realData = await Deno.realPath(join(t.data, "d.json"));
    assertEq(await resolveData("d.json", roots, t.root), realData);
    assertEq(await resolveData("data/d.json", roots, t.root), realData); // relative to the cwd
    await Deno.symlink(join(t.data, "d.json"), join(t.data, "alias.json")); // a link inside is fine
    assertEq(await resolveData("alias.json", roots, t.root), realData);
    await Deno.symlink(join(t.root, "outside.json"), join(t.data, "out.json"));
    for (
      const bad of ["../outside.json", "out.json", join(t.root, "outside.json"), "outside.json", "nope.json"]
    ) {
      let e: unknown;
      await resolveData(bad, roots, t.root).catch((x) => (e = x));
      assert(e instanceof PathError && e.field === "data", `${bad}: ${e}`);
    }
    let esc: unknown;
    await resolveData("out.json", roots, t.root).catch((x) => (esc = x));
    assert(String(esc).includes("symlink"), String(esc));
    const realAdapter = await Deno.realPath(join(t.models, "run1/model/checkpoint-10"));
    await Deno.mkdir(join(t.models, "run1/model/checkpoint-9"));
    await Deno.writeTextFile(join(t.models, "run1/model/checkpoint-9/adapter_config.json"), "{}");
    assertEq(await resolveAdapter("run1/model/checkpoint-10", roots, t.root), realAdapter);
    assertEq(await resolveAdapter("models/run1/model/checkpoint-10", roots, t.root), realAdapter);
    assertEq(await resolveAdapter("run1/checkpoint-10", roots, t.root), realAdapter);
    assertEq(await resolveAdapter("run1", roots, t.root), realAdapter); // newest checkpoint (10 > 9)
  } finally {
    await t.cleanup();
  }
});
