// One writer per report format, keyed by the format: adding a format to FORMATS without a writer does not
// compile, and outputs.ts never needs to know which formats exist.
import type { Format } from './formats.js';
import { renderJson } from './json.js';
import { renderJunit } from './junit.js';
import type { Report } from './model.js';
import { renderSarif } from './sarif.js';
import { renderTable } from './table.js';

/** What a writer may take from where its output goes; writers read no environment themselves. */
export interface WriterContext {
  /** Colour (only the table has any). */
  color: boolean;
  /** Terminal columns, for output to a terminal. */
  width?: number;
  /** The host name JUnit's Ant XSD requires on every suite. */
  hostname: string;
}

export type Writer = (report: Report, context: WriterContext) => string;

export const WRITERS: Record<Format, Writer> = {
  table: (report, { color, width }) => renderTable(report, { color, ...(width ? { width } : {}) }),
  json: (report) => renderJson(report),
  junit: (report, { hostname }) => renderJunit(report, { hostname }),
  sarif: (report) => renderSarif(report),
};
