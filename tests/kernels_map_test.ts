// kernels/README.md is the map kernel -> wrapper -> CPU reference -> test: every .wgsl under kernels/ must have a
// row, every row must name a kernel that exists, and every repository path the map names must exist.
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const KERNELS = join(ROOT, "kernels");

function wgslFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...wgslFiles(p));
    else if (e.name.endsWith(".wgsl")) out.push(relative(KERNELS, p));
  }
  return out.sort();
}

/** The first cell of every table row: the kernel, relative to kernels/. */
function mapRows(text: string): { kernel: string; cells: string[] }[] {
  return text.split("\n")
    .filter((l) => l.startsWith("| `") && !l.startsWith("| ---"))
    .map((l) => {
      const cells = l.split("|").slice(1, -1).map((c) => c.trim());
      return { kernel: cells[0].replace(/`/g, ""), cells };
    });
}

const text = Deno.readTextFileSync(join(KERNELS, "README.md"));
const rows = mapRows(text);

Deno.test("kernels/README.md lists every .wgsl file once, and only files that exist", () => {
  const listed = rows.map((r) => r.kernel);
  const dupes = listed.filter((k, i) => listed.indexOf(k) !== i);
  assert.deepEqual(dupes, [], "kernels listed twice");
  const files = wgslFiles(KERNELS);
  assert.deepEqual(files.filter((f) => !listed.includes(f)), [], "kernels missing from kernels/README.md");
  assert.deepEqual(listed.filter((k) => !files.includes(k)), [], "kernels/README.md rows with no such file");
});

Deno.test("every row of kernels/README.md names a wrapper, a reference and a test, and every path exists", () => {
  for (const r of rows) {
    assert.equal(r.cells.length, 4, `${r.kernel}: expected kernel | wrapper | reference | test`);
    assert.match(r.cells[1], /`src\/[^`]+\.ts`/, `${r.kernel}: no wrapper under src/`);
    assert.ok(r.cells[2].length > 0, `${r.kernel}: no reference`);
    assert.match(r.cells[3], /`tests\/[^`]+_test\.ts`/, `${r.kernel}: no test`);
  }
  const paths = [...text.matchAll(/`((?:src|tests|kernels|docs)\/[^`\s]+|CONTRIBUTING\.md)`/g)].map((m) =>
    m[1]
  );
  assert.ok(paths.length > rows.length * 2, "the map names too few paths to be the map");
  const missing = paths.filter((p) => {
    try {
      Deno.statSync(join(ROOT, p.replace(/#.*$/, "")));
      return false;
    } catch {
      return true;
    }
  });
  assert.deepEqual([...new Set(missing)], [], "paths named in kernels/README.md that do not exist");
});

/** The repository paths of the modules a file imports (relative specifiers only). */
function importsOf(path: string): string[] {
  const text = Deno.readTextFileSync(join(ROOT, path));
  return [...text.matchAll(/from "(\.[^"]+\.ts)"/g)].map((m) =>
    relative(ROOT, join(ROOT, dirname(path), m[1]))
  );
}

Deno.test("every kernel's wrapper imports it and declares its Params; its test reaches the wrapper", () => {
  for (const r of rows) {
    const wrapper = r.cells[1].match(/`(src\/[^`]+\.ts)`/)![1];
    const src = Deno.readTextFileSync(join(ROOT, wrapper));
    assert.ok(src.includes(`kernels/${r.kernel}"`), `${r.kernel}: ${wrapper} does not import it`);
    const wgsl = Deno.readTextFileSync(join(KERNELS, r.kernel));
    assert.doesNotMatch(
      wgsl,
      /^\s*struct\s+Params\b/m,
      `${r.kernel}: declares struct Params (declare it in ${wrapper})`,
    );
    if (!r.kernel.startsWith("lib/") && /var<uniform>\s+p\s*:\s*Params/.test(wgsl)) {
      assert.match(
        src,
        new RegExp(`file: "${r.kernel}"[^}]*params:`),
        `${r.kernel}: ${wrapper} declares no params`,
      );
    }
    if (r.kernel.startsWith("lib/")) continue; // libraries are reached through the kernels that include them
    // The test imports the wrapper, or a module that does (the LoRA kernels are tested through the projection).
    const test = r.cells[3].match(/`(tests\/[^`]+_test\.ts)`/)![1];
    const direct = importsOf(test);
    const reached = direct.includes(wrapper) ||
      direct.some((m) => m.startsWith("src/") && importsOf(m).includes(wrapper));
    assert.ok(reached, `${r.kernel}: ${test} does not reach ${wrapper}`);
  }
});
