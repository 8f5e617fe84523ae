// The report formats a scan can write, and where each one goes.
export const FORMATS = ['table', 'json', 'junit', 'sarif'] as const;
export type Format = (typeof FORMATS)[number];

export interface OutputSpec {
  format: Format;
  /** Where the report goes; undefined = stdout. */
  path?: string;
}
