import { loadDialogues } from "../../src/data/load.ts";
import { UsageError } from "../../src/util/errors.ts";

Deno.test("the bundled data file is embedded: it loads by its default path from any working directory", async () => {
  const here = Deno.cwd();
  const onDisk = await loadDialogues(
    new URL("../../data/dialogue/processed/1gouki.json", import.meta.url).pathname,
  );
  Deno.chdir(await Deno.makeTempDir());
  try {
    const embedded = await loadDialogues("data/dialogue/processed/1gouki.json");
    if (embedded.length !== onDisk.length || embedded.length < 80) {
      throw new Error(`${embedded.length} dialogues`);
    }
    let threw = false;
    try {
      await loadDialogues("data/dialogue/processed/other.json");
    } catch (e) {
      threw = e instanceof UsageError && /not found/.test(e.message);
    }
    if (!threw) throw new Error("a missing non-bundled file must be a usage error");
  } finally {
    Deno.chdir(here);
  }
});
