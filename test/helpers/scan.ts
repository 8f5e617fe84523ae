// Runs `docker clair scan` in-process against the real test daemon, with the image source exposed so
// tests can count exports.
import type { Readable } from 'node:stream';
import { parseCommandLine, type Invocation } from '../../src/cli/app.js';
import { createDockerClient } from '../../src/docker/client.js';
import { resolveEndpoint } from '../../src/docker/endpoint.js';
import { DockerImageSource } from '../../src/source/daemon.js';
import { DockerClairError } from '../../src/runtime/errors.js';
import { createLogger } from '../../src/runtime/log.js';
import { runScan, type RunStats } from '../../src/scan/run.js';
import { TEST_DOCKER_HOST } from './daemon.js';
import { assertValidReport } from './report-schema.js';
import { Capture } from './streams.js';

export interface ScanRun {
  code: number;
  stdout: string;
  stderr: string;
  stats: RunStats;
  error?: DockerClairError;
}

export interface ScanInProcessOptions {
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** What `--input -` reads. */
  stdin?: Readable;
  /** false: no daemon at all (for --input); default: the test daemon, with its source exposed for counting. */
  daemon?: boolean;
  /** Pretend stderr is a terminal (progress is shown only there). */
  stderrIsTTY?: boolean;
}

export async function scanInProcess(args: string[], options: ScanInProcessOptions = {}): Promise<ScanRun> {
  const daemon = options.daemon !== false;
  const env: Record<string, string> = daemon ? { DOCKER_HOST: TEST_DOCKER_HOST, ...options.env } : { ...options.env };
  const stdout = new Capture();
  const stderr = new Capture();
  const stats: RunStats = { saves: 0, layersSent: 0, bytesSent: 0 };
  try {
    const { invocation, globals } = await parseCommandLine(['scan', ...args], env);
    const scanOptions = (invocation as Extract<Invocation, { kind: 'scan' }>).options;
    let source: DockerImageSource | undefined;
    if (daemon) {
      const endpoint = await resolveEndpoint(globals, env);
      source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
    }
    const code = await runScan(scanOptions, globals, {
      env, stdout, stderr, stdoutIsTTY: false, stderrIsTTY: Boolean(options.stderrIsTTY),
      log: createLogger(stderr, { debug: Boolean(globals.debug) }),
      signal: options.signal ?? new AbortController().signal,
      ...(source ? { source } : {}),
      ...(options.stdin ? { stdin: options.stdin } : {}),
      clock: () => new Date('2026-01-02T03:04:05Z'),
    }, stats);
    return { code, stdout: stdout.text, stderr: stderr.text, stats };
  } catch (error) {
    if (!(error instanceof DockerClairError)) throw error;
    return { code: error.exitCode, stdout: stdout.text, stderr: `${stderr.text}${error.message}\n`, stats, error };
  }
}

/** The JSON report's first image. */
export function firstImage(run: ScanRun): {
  verdict: string;
  reason: string;
  packageCount: number;
  vulnerabilities: { id: string; severity: string; package: { name: string; version: string }; fixedIn: string | null; layer: string | null }[];
  trust?: { kind: string }[];
} {
  // Every JSON report read through here is also checked against schema/report.schema.json.
  const doc = assertValidReport(run.stdout) as { images: unknown[] };
  return doc.images[0] as ReturnType<typeof firstImage>;
}

/** Listening TCP servers in this process (the in-process doubles' included): a scan must leave the count as it was. */
export function listeners(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
}
