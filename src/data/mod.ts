/** Dialogue data (docs/ARCHITECTURE.md#data): loading, tokenization with label masks, split, epoch order, batches, report. */
export { DataError, type DataIssue, formatIssue, MAX_REPORTED } from "./errors.ts";
export type { DataFormat, Dialogue, Turn } from "./schema.ts";
export {
  CONTROL_MARKERS,
  loadDialogues,
  modelVersion,
  parseDialogues,
  sha256DataFile,
  validateRecord,
} from "./load.ts";
export {
  countTargets,
  encodeDialogue,
  type Example,
  IGNORE_INDEX,
  newTokenizeStats,
  tokenizeDialogue,
  tokenizeDialogues,
  type TokenizeStats,
} from "./tokenize.ts";
export { epochOrder, shuffledRange, splitDialogues } from "./split.ts";
export { type Batch, collate, groupByLength, makeBatches } from "./batch.ts";
export { type DataReport, dataReport, type DataReportJson, markTargets } from "./report.ts";
