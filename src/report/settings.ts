// What the report stage takes from the command line.
import type { Severity } from '../findings/severity.js';
import type { OutputSpec } from './formats.js';

export interface ReportSettings {
  /** Each requested format and where it goes (--format FMT[=PATH], --output). */
  outputs: OutputSpec[];
  /** --min-severity: rows below it are hidden from the reports; the verdict still counts them. */
  minSeverity?: Severity;
  /** false with --no-color; undefined = decide from NO_COLOR and the terminal. */
  color?: boolean;
}
