// `--ignore-file`: vulnerability ids a team has decided to accept. Pure: text in, rules out (reading the file is
// the caller's job, see policy/load.ts).
//
// Two forms, told apart by the first line that is neither blank nor a comment:
//   - it starts with "-", "---" or "vulnerabilities:" → the structured YAML form;
//   - anything else → the plain `.trivyignore` form.
// (A plain line is a vulnerability id, which never starts with "-" and is never "vulnerabilities:", so the rule
// cannot misread a plain file; a YAML file is then parsed strictly, so a half-YAML file is an error, not a guess.)
//
// Plain form, one rule per line:      CVE-2099-0001                 # comments after whitespace are allowed
//                                     CVE-2099-0002 exp:2027-01-31
// YAML form, a list of entries, either top-level or under `vulnerabilities:`:
//   vulnerabilities:
//     - id: CVE-2099-0001          # required
//       package: libc6             # optional: binary or source package name
//       image: "registry.example/app:*"  # optional: glob on the image reference (* any run, ? one character)
//       expires: 2027-01-31        # optional: YYYY-MM-DD
//       reason: fixed upstream, waiting for the base image
//
// Expiry follows Trivy: a rule with `exp:`/`expires:` D applies until D 00:00 UTC and not from then on.
// Any malformed line is a UsageError (exit 2) naming the file, the line and the problem.
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node } from 'yaml';
import { UsageError } from '../runtime/errors.js';
import type { IgnoreRule } from './ignore-rules.js';

export { isExpired, partitionRules, ruleSource, type IgnoreRule } from './ignore-rules.js';

export interface IgnoreFile {
  path: string;
  form: 'plain' | 'yaml';
  rules: IgnoreRule[];
}

const HINT = 'fix the line, or see the README section "Ignoring vulnerabilities" for both forms';
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const YAML_KEYS = new Set(['id', 'package', 'image', 'expires', 'reason']);

export function parseIgnoreFile(text: string, path: string): IgnoreFile {
  const body = text.replace(/^\uFEFF/, '');
  const form = detectForm(body);
  return { path, form, rules: form === 'yaml' ? parseYaml(body, path) : parsePlain(body, path) };
}

/** Which form a file is in (see the header comment for the rule). */
export function detectForm(text: string): 'plain' | 'yaml' {
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    return /^(-(\s|$)|---|vulnerabilities\s*:)/.test(line) ? 'yaml' : 'plain';
  }
  return 'plain';
}

function fail(path: string, line: number, problem: string): UsageError {
  return new UsageError(`invalid ignore file ${path}, line ${line}: ${problem}`, HINT);
}

/** A valid calendar date written YYYY-MM-DD, or undefined. */
function checkDate(value: string): string | undefined {
  const m = DATE.exec(value);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d ? value : undefined;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:+\/()-]*$/;

function parsePlain(text: string, path: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const hash = raw.search(/(^|\s)#/);
    const content = (hash < 0 ? raw : raw.slice(0, hash)).trim();
    if (content === '') return;
    const [id, ...rest] = content.split(/\s+/) as [string, ...string[]];
    if (!ID.test(id)) throw fail(path, line, `"${id}" is not a vulnerability id`);
    const rule: IgnoreRule = { id, source: { path, line } };
    for (const token of rest) {
      if (!token.startsWith('exp:')) {
        throw fail(path, line, `unexpected "${token}" after the id (only exp:YYYY-MM-DD may follow it)`);
      }
      if (rule.expires !== undefined) throw fail(path, line, 'exp: given twice');
      const date = checkDate(token.slice(4));
      if (!date) throw fail(path, line, `"${token}" is not exp:YYYY-MM-DD with a real date`);
      rule.expires = date;
    }
    rules.push(rule);
  });
  return rules;
}

function parseYaml(text: string, path: string): IgnoreRule[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => lineCounter.linePos(offset ?? 0).line;
  const firstError = doc.errors[0];
  if (firstError) {
    throw fail(path, lineOf(firstError.pos[0]), `not valid YAML (${firstError.message.split('\n')[0]})`);
  }
  const nodeLine = (node: Node | null | undefined, fallback: number) => (node?.range ? lineOf(node.range[0]) : fallback);
  let list: Node | null = doc.contents;
  if (isMap(list)) {
    for (const pair of list.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (key !== 'vulnerabilities') {
        throw fail(path, nodeLine(pair.key as Node, 1), `unknown key "${key}" (the YAML form is a list under "vulnerabilities:")`);
      }
    }
    const value = list.get('vulnerabilities', true) as Node | undefined;
    if (value === undefined || (isScalar(value) && value.value === null)) return [];
    list = value;
  }
  if (list === null || (isScalar(list) && list.value === null)) return [];
  if (!isSeq(list)) throw fail(path, nodeLine(list, 1), 'expected a list of entries ("- id: CVE-…")');
  const rules: IgnoreRule[] = [];
  for (const item of list.items as Node[]) {
    const line = nodeLine(item, 1);
    if (!isMap(item)) throw fail(path, line, 'each entry must be a mapping with at least "id:"');
    const rule: Partial<IgnoreRule> = { source: { path, line } };
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      const keyLine = nodeLine(pair.key as Node, line);
      if (!YAML_KEYS.has(key)) {
        throw fail(path, keyLine, `unknown key "${key}" (allowed: ${[...YAML_KEYS].join(', ')})`);
      }
      const valueNode = pair.value as Node | null;
      const value = isScalar(valueNode) ? valueNode.value : undefined;
      if (typeof value !== 'string' || value.trim() === '') {
        throw fail(path, nodeLine(valueNode, keyLine), `"${key}" must be a non-empty string`);
      }
      const text = value.trim();
      switch (key) {
        case 'id':
          rule.id = text;
          break;
        case 'package':
          rule.package = text;
          break;
        case 'image':
          rule.image = text;
          break;
        case 'reason':
          rule.reason = text;
          break;
        case 'expires': {
          const date = checkDate(text);
          if (!date) throw fail(path, nodeLine(valueNode, keyLine), `expires "${text}" is not YYYY-MM-DD with a real date`);
          rule.expires = date;
          break;
        }
      }
    }
    if (rule.id === undefined) throw fail(path, line, 'entry has no "id"');
    rules.push(rule as IgnoreRule);
  }
  return rules;
}
