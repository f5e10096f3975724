// Moved to src/util/progress.ts (one progress module for every layer); this re-export keeps old imports working.
export * from "../util/progress.ts";
