// Everything one `docker clair scan` run needs, composed of what each stage takes: the CLI builds it, and each
// stage is handed (or reads) only its own part. Stages define their settings; none imports the CLI's types.
import type { ClairSettings } from '../clair/settings.js';
import type { LayerBindingSettings } from '../layer-server/settings.js';
import type { PolicySettings } from '../policy/load.js';
import type { ReportSettings } from '../report/settings.js';
import type { SourceSettings } from '../source/settings.js';

/** The run as a whole. */
export interface RunSettings {
  /** Whole-run timeout in milliseconds; 0 = none. */
  timeoutMs: number;
  /** Show progress on stderr (only ever shown when stderr is a terminal). */
  progress: boolean;
}

export type ScanSettings = RunSettings & SourceSettings & ClairSettings & LayerBindingSettings & PolicySettings & ReportSettings;
