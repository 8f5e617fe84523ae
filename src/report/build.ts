// The Report of a run: every image's outcome, stamped with the tool, the time and the policy that judged them.
// The caller passes the version and the time, so renderers, which read the Report only, stay pure.
import type { PolicySettings, RunPolicy } from '../policy/load.js';
import type { ImageOutcome, Report } from './model.js';
import type { ReportSettings } from './settings.js';

export interface ReportInput {
  version: string;
  generatedAt: Date;
  settings: Readonly<Pick<PolicySettings, 'failOn' | 'ignoreUnfixed'> & Pick<ReportSettings, 'minSeverity'>>;
  policy: Pick<RunPolicy, 'ignoreFile' | 'expired'>;
  outcomes: ImageOutcome[];
}

export function buildReport({ version, generatedAt, settings, policy, outcomes }: ReportInput): Report {
  return {
    tool: { name: 'docker-clair', version },
    generatedAt: generatedAt.toISOString(),
    failOn: settings.failOn,
    ...(settings.minSeverity ? { minSeverity: settings.minSeverity } : {}),
    ...(policy.ignoreFile ? { ignoreFile: policy.ignoreFile } : {}),
    ignoreUnfixed: settings.ignoreUnfixed,
    expiredRules: policy.expired,
    images: outcomes,
  };
}
