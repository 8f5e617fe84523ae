// The FindingFilters, applied by evaluateScan before the threshold decision, in this order:
// the ignore file's rules, then --ignore-unfixed. A suppressed finding keeps the rule that hid it.
import type { Finding, ImageScan } from '../findings/model.js';
import { ruleSource, type IgnoreRule } from './ignore-rules.js';
import type { FindingFilter, SuppressionHit } from './verdict.js';

const IGNORE_UNFIXED_RULE = '--ignore-unfixed';

/**
 * The ignore file's (unexpired) rules. A rule matches a finding when
 *   - its id equals the finding's id, ignoring case;
 *   - its `package`, if any, equals the finding's package name or source package name;
 *   - its `image` glob, if any, matches the image reference as given, its image id or its digest.
 * The first matching rule (in file order) is the one reported.
 */
export function ignoreRulesFilter(rules: readonly IgnoreRule[]): FindingFilter {
  const compiled = rules.map((rule) => ({ rule, id: rule.id.toLowerCase(), image: rule.image ? globToRegExp(rule.image) : undefined }));
  return {
    suppress(finding: Finding, scan: ImageScan): SuppressionHit | undefined {
      const id = finding.id.toLowerCase();
      for (const { rule, id: ruleId, image } of compiled) {
        if (ruleId !== id) continue;
        if (rule.package !== undefined && rule.package !== finding.package.name && rule.package !== finding.package.source?.name) continue;
        if (image && ![scan.image.ref, scan.image.id, scan.image.digest].some((v) => v !== undefined && image.test(v))) continue;
        return {
          rule: ruleSource(rule),
          reason: rule.reason ?? `listed in ${ruleSource(rule)}`,
          ...(rule.expires ? { expires: rule.expires } : {}),
        };
      }
      return undefined;
    },
  };
}

/** --ignore-unfixed: findings with no fixed version. */
export const ignoreUnfixedFilter: FindingFilter = {
  suppress(finding: Finding): SuppressionHit | undefined {
    return finding.fixedIn ? undefined : { rule: IGNORE_UNFIXED_RULE, reason: 'no fixed version is available' };
  },
};

/** The run's filters in the order they apply. */
export function buildFilters(options: { rules?: readonly IgnoreRule[]; ignoreUnfixed?: boolean }): FindingFilter[] {
  const filters: FindingFilter[] = [];
  if (options.rules && options.rules.length > 0) filters.push(ignoreRulesFilter(options.rules));
  if (options.ignoreUnfixed) filters.push(ignoreUnfixedFilter);
  return filters;
}

/** A whole-string glob: `*` any run of characters (slashes and colons included), `?` exactly one. */
export function globToRegExp(glob: string): RegExp {
  const body = [...glob].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+(){}[\]]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}
