// Moved to src/util/errors.ts (errors are used by every layer); this re-export keeps old imports working.
export * from "../util/errors.ts";
