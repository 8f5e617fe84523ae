// The rules of an ignore file once read (ignore-file.ts parses them): when each applies, and how reports name it.
// Apart from the parser, so that a run without an ignore file never loads the YAML library.

export interface IgnoreRule {
  /** The vulnerability id, matched case-insensitively against Finding.id. */
  id: string;
  /** Only findings in this package (binary or source name). */
  package?: string;
  /** Only images whose reference (or id, or digest) matches this glob. */
  image?: string;
  /** YYYY-MM-DD: the rule stops applying at 00:00 UTC that day. */
  expires?: string;
  reason?: string;
  /** Where the rule was written: the file as given and its 1-based line. */
  source: { path: string; line: number };
}

/** Whether the rule has expired at `now` (it expires at 00:00 UTC on its date). */
export function isExpired(rule: IgnoreRule, now: Date): boolean {
  return rule.expires !== undefined && now.getTime() >= Date.parse(`${rule.expires}T00:00:00Z`);
}

/** Splits rules into those that still apply and those that expired (to be reported, not applied). */
export function partitionRules(rules: readonly IgnoreRule[], now: Date): { active: IgnoreRule[]; expired: IgnoreRule[] } {
  const active: IgnoreRule[] = [];
  const expired: IgnoreRule[] = [];
  for (const rule of rules) (isExpired(rule, now) ? expired : active).push(rule);
  return { active, expired };
}

/** "path:line", how reports name a rule. */
export function ruleSource(rule: IgnoreRule): string {
  return `${rule.source.path}:${rule.source.line}`;
}
