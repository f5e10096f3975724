// Moved to src/config/gemma2.ts (the model description, below every layer that reads it); this re-export keeps old imports working.
export * from "../config/gemma2.ts";
