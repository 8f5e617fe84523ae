// Severities in ascending order, as Clair v4 normalises them (normalized_severity). v1's Defcon1 maps to
// Critical when findings are normalised.
export const SEVERITIES = ['Unknown', 'Negligible', 'Low', 'Medium', 'High', 'Critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export function severityRank(severity: Severity): number {
  return SEVERITIES.indexOf(severity);
}

/** Case-insensitive lookup of a severity name; undefined when it is not one. */
export function parseSeverity(value: string): Severity | undefined {
  const lower = value.toLowerCase();
  return SEVERITIES.find((s) => s.toLowerCase() === lower);
}
