/**
 * The bundled dialogues, embedded in the module graph so that a compiled `maieutic train` finds the default
 * data file even outside a checkout (the path is still the user-facing name: MODEL_VERSION stays "1gouki").
 */
import bundled from "../../data/dialogue/processed/1gouki.json" with { type: "bytes" };

export const BUNDLED_DATA_PATH = "data/dialogue/processed/1gouki.json";

/** The embedded bytes when `path` names the bundled file, else null. */
export function bundledData(path: string): Uint8Array | null {
  const norm = path.replace(/\\/g, "/").replace(/^\.\//, "");
  return norm === BUNDLED_DATA_PATH ? bundled : null;
}
