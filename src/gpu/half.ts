// Moved to src/util/half.ts (safetensors and quant need it below the GPU layer); this re-export keeps old imports working.
export * from "../util/half.ts";
