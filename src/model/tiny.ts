// Moved to src/hub/tiny.ts (the built-in tiny model is one of the model sources); this re-export keeps old imports working.
export * from "../hub/tiny.ts";
