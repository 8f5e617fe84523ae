// The run's policy, prepared once before any image is touched: the ignore file is read and checked first, so a
// malformed file fails the run (exit 2, naming the line) before anything is exported or sent to Clair.
//
// Which file: --ignore-file PATH (must exist), else `.clairignore` in the current directory when it exists,
// else none. Rules whose date has passed (by the injected clock) are not applied; each is warned about on
// stderr and listed in the JSON report's `expiredRules`.
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import process from 'node:process';
import type { Severity } from '../findings/severity.js';
import { buildFilters } from './filters.js';
import { partitionRules, ruleSource, type IgnoreRule } from './ignore-rules.js';
import type { FindingFilter } from './verdict.js';
import { UsageError, errnoCode } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';

const DEFAULT_IGNORE_FILE = '.clairignore';

/** What the policy stage takes from the command line. */
export interface PolicySettings {
  /** Findings at or above this severity fail the scan; 'none' never fails on findings. */
  failOn: Severity | 'none';
  /** --ignore-file; undefined = `.clairignore` in the current directory, when there is one. */
  ignoreFile?: string;
  /** --ignore-unfixed: findings without a fixed version do not count. */
  ignoreUnfixed: boolean;
}

export interface RunPolicy {
  filters: FindingFilter[];
  /** The ignore file read, as the user named it (or `.clairignore`). */
  ignoreFile?: string;
  expired: IgnoreRule[];
}

export async function loadRunPolicy(
  settings: Readonly<Pick<PolicySettings, 'ignoreFile' | 'ignoreUnfixed'>>,
  deps: { cwd?: string; now: Date; log: Logger },
): Promise<RunPolicy> {
  const cwd = deps.cwd ?? process.cwd();
  let path = settings.ignoreFile;
  if (path === undefined && (await isFile(join(cwd, DEFAULT_IGNORE_FILE)))) path = DEFAULT_IGNORE_FILE;
  if (path === undefined) return { filters: buildFilters({ ignoreUnfixed: settings.ignoreUnfixed }), expired: [] };

  let text: string;
  try {
    text = await readFile(resolve(cwd, path), 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the ignore file ${path} (${errnoCode(error) ?? String(error)})`,
      settings.ignoreFile ? 'check the --ignore-file path' : `fix or remove ./${DEFAULT_IGNORE_FILE}`);
  }
  // The parser (and the YAML library with it, ~5 ms to load) only when there is a file.
  const { parseIgnoreFile } = await import('./ignore-file.js');
  const file = parseIgnoreFile(text, path);
  const { active, expired } = partitionRules(file.rules, deps.now);
  for (const rule of expired) {
    deps.log.warn(`ignore rule ${rule.id} (${ruleSource(rule)}) expired on ${rule.expires}; it no longer applies`);
  }
  return { filters: buildFilters({ rules: active, ignoreUnfixed: settings.ignoreUnfixed }), ignoreFile: path, expired };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
