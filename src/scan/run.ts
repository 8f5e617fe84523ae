// One `docker clair scan` run: every image through the pipeline, then policy, then the reports.
//   ① resolve the Docker endpoint, reach the daemon (or open the --input archive)  ② inspect each image
//   ③ export + serve layers + index with Clair (the Clair engine)  ④ verdict per image  ⑤ reports, exit code
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { isBase64Key, type PskAuth } from '../clair/auth.js';
import { chooseSource } from '../source/choose.js';
import type { ImageSource } from '../source/daemon.js';
import { chooseLayerBinding, containerNetworkBinding } from '../layer-server/advertise.js';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { evaluateScan, exitCodeFor } from '../policy/verdict.js';
import { buildReport } from '../report/build.js';
import type { ImageOutcome } from '../report/model.js';
import { outcomesOf } from '../report/model.js';
import { writeReports } from '../report/outputs.js';
import {
  DockerClairError,
  TimeoutError,
  UsageError,
  errnoCode,
  type ExitCode,
} from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { proxySettings } from '../runtime/proxy.js';
import { lineProgress, silentProgress } from '../runtime/progress.js';
import { VERSION } from '../version.js';
import { resolveClairApi } from '../clair/detect.js';
import { createClairEngine, type EngineResult } from '../clair/engine.js';
import type { RemoteImage } from '../registry/client.js';
import type { ImageArchive } from '../source/archive.js';
import { loadRunPolicy } from '../policy/load.js';
import type { ScanSettings } from './settings.js';
import type { ManagedClairEndpoint } from '../managed-clair/endpoint.js';

export interface ScanDeps {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  columns?: number | undefined;
  log: Logger;
  signal: AbortSignal;
  home?: string;
  clock?: () => Date;
  /** Where a relative --ignore-file and the default .clairignore are looked up (default: process.cwd()). */
  cwd?: string;
  /** Tests may pass the source they built (to count exports); production builds it from the endpoint. */
  source?: ImageSource;
  /** What `--input -` reads (default: the process's stdin). */
  stdin?: Readable;
}

/** Statistics of the last run, for tests and benchmarks. */
export interface RunStats {
  /** `docker save` calls; with --input, reads of the archive (a file's header walk included). */
  saves: number;
  layersSent: number;
  bytesSent: number;
}

export async function runScan(options: Readonly<ScanSettings>, globals: DockerGlobalFlags, deps: ScanDeps, stats?: RunStats): Promise<ExitCode> {
  const signal = runSignal(deps.signal, options.timeoutMs);
  try {
    return await scanAll(options, globals, deps, signal, stats);
  } catch (error) {
    // Whatever was interrupted, the user is told why: cancelled (130) or --timeout (2).
    if (signal.aborted) throw abortReason(signal, options.timeoutMs);
    throw error;
  }
}

async function scanAll(
  options: Readonly<ScanSettings>,
  globals: DockerGlobalFlags,
  deps: ScanDeps,
  signal: AbortSignal,
  stats?: RunStats,
): Promise<ExitCode> {
  const { log } = deps;
  let indexerUrl = options.indexerUrl ?? options.clairUrl;
  let matcherUrl = options.matcherUrl ?? options.clairUrl;
  // Without --clair/CLAIR_ADDR, the managed Clair (docker clair server up), with its own PSK.
  let managed: ManagedClairEndpoint | undefined;
  if (!indexerUrl || !matcherUrl) {
    const { findManagedClair } = await import('../managed-clair/discover.js');
    managed = await findManagedClair(globals, deps.env, deps.home, log, signal);
    log.debug(`Clair: the managed server at ${managed.url.href}`);
    indexerUrl = managed.url;
    matcherUrl = managed.url;
  }
  // The ignore file is read and checked before anything is exported, so a bad file fails fast (exit 2).
  const clock = deps.clock ?? (() => new Date());
  const policy = await loadRunPolicy(options, { now: clock(), log, ...(deps.cwd ? { cwd: deps.cwd } : {}) });
  const psk = managed ? managed.psk : pskFromEnv(deps.env);
  const ca = options.clairCaCert ? await readCaFile(options.clairCaCert) : undefined;
  // HTTP(S)_PROXY and NO_PROXY, as the docker CLI reads them, for Clair and registries (never the daemon's socket).
  const proxy = proxySettings(deps.env);

  // --clair-api auto probes Clair once; the engine speaks the API found. The probe runs while the daemon is reached
  // (the daemon's round trips and Clair's are the start-up a scan waits through); the daemon's failure still comes
  // first, and stops the probe.
  const probe = new AbortController();
  const detected = resolveClairApi(options.clairApi ?? 'auto', options, { ...(ca ? { ca } : {}), signal: AbortSignal.any([signal, probe.signal]), proxy });
  detected.catch(() => undefined); // awaited below, after the daemon: not an unhandled rejection meanwhile
  let images: Awaited<ReturnType<typeof chooseSource>>;
  try {
    images = await chooseSource({
      images: options.images, input: options.input, imageSources: options.imageSources, platform: options.platform, proxy,
      globals, env: deps.env, home: deps.home, log,
      source: deps.source, stdin: deps.stdin,
    }, signal);
  } catch (error) {
    probe.abort();
    throw error;
  }
  // The layer server's address is settled while Clair's API is still being probed; a probe failure is told first.
  const gateway = managed?.gateway;
  const choosing = gateway && !options.layerAddress
    ? Promise.resolve().then(() => containerNetworkBinding(gateway))
    : chooseLayerBinding(indexerUrl, options.layerAddress, images.publishedPortGateway);
  choosing.catch(() => undefined);
  const api = await detected;
  log.debug(`Clair API: ${api.api} (${api.why})`);
  const binding = await choosing;
  log.debug(`layer server address: ${binding.advertiseHost} (${binding.why})`);
  const engine = await createClairEngine(api.api, {
    indexerUrl, matcherUrl, psk, ca, binding, maxDbAgeMs: options.maxDbAgeMs, now: clock, v1BufferBytes: options.v1BufferBytes,
    v1FullLayers: options.v1FullLayers, proxy,
  });
  // Progress is for people watching a terminal; CI logs get the report and errors only.
  const progress = options.progress && deps.stderrIsTTY ? lineProgress(deps.stderr) : silentProgress;

  const run = { log, progress, signal };
  const outcomes: ImageOutcome[] = [];
  const scanned = (result: EngineResult) => {
    if (stats) {
      stats.layersSent += result.layersSent;
      stats.bytesSent += result.bytesSent;
    }
    const { suppressed, ...verdict } = evaluateScan(result.scan, { failOn: options.failOn, filters: policy.filters });
    outcomes.push({ kind: 'scanned', scan: result.scan, verdict, suppressed });
  };
  const failed = (ref: string, error: unknown) => {
    if (signal.aborted || !(error instanceof DockerClairError)) throw error;
    // A lone image's error is the run's error. With several, one failing does not stop the others:
    // it is reported, kept in the report, and ranks first in the exit code.
    if (images.targets.length === 1) throw error;
    log.warn(`${ref}: ${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}`);
    outcomes.push({ kind: 'error', image: { ref }, error: { message: error.message, code: error.code } });
  };

  const remote = (image: RemoteImage): Promise<EngineResult> => {
    if (!engine.scanRemote) {
      throw new UsageError(`${image.ref} is in a registry, which Clair ${engine.api} cannot fetch from here`,
        'pull it and scan it from the daemon (--image-src daemon)');
    }
    return engine.scanRemote(image, run);
  };
  if (engine.scanAll && images.group && images.targets.length > 1) {
    // Several images from a daemon: all inspected first, so the ones Clair lacks are exported together, once.
    const opened: ({ ref: string; image: ImageArchive | RemoteImage } | { ref: string; error: unknown })[] = [];
    for (const { ref, open } of images.targets) {
      try {
        opened.push({ ref, image: await open(progress) });
      } catch (error) {
        if (signal.aborted) throw error;
        opened.push({ ref, error });
      }
    }
    const archives = opened.flatMap((o) => ('image' in o && !isRemote(o.image) ? [o.image] : []));
    const results = await engine.scanAll(archives, images.group, run);
    if (stats) stats.saves = images.passes();
    let next = 0;
    for (const o of opened) {
      if (!('image' in o)) {
        failed(o.ref, o.error);
      } else if (isRemote(o.image)) {
        try {
          scanned(await remote(o.image));
        } catch (error) {
          failed(o.ref, error);
        }
      } else {
        const result = results[next++] as PromiseSettledResult<EngineResult>;
        if (result.status === 'fulfilled') scanned(result.value);
        else failed(o.ref, result.reason);
      }
    }
  } else {
    for (const { ref, open } of images.targets) {
      try {
        const image = await open(progress);
        scanned(isRemote(image) ? await remote(image) : await engine.scan(image, run));
      } catch (error) {
        failed(ref, error);
      } finally {
        if (stats) stats.saves = images.passes();
      }
    }
  }

  const report = buildReport({ version: VERSION, generatedAt: clock(), settings: options, policy, outcomes });
  const stdoutColor = options.color !== false && !deps.env.NO_COLOR && deps.stdoutIsTTY;
  await writeReports(report, options.outputs, { stdout: deps.stdout, stdoutColor, ...(deps.columns ? { width: deps.columns } : {}) });
  return exitCodeFor(outcomesOf(report));
}

/** The run's cancellation: the caller's signal (signals, plugin socket) and --timeout. */
function runSignal(parent: AbortSignal, timeoutMs: number): AbortSignal {
  return timeoutMs > 0 ? AbortSignal.any([parent, AbortSignal.timeout(timeoutMs)]) : parent;
}

function abortReason(signal: AbortSignal, timeoutMs: number): unknown {
  const reason: unknown = signal.reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') {
    return new TimeoutError(`the scan did not finish within --timeout ${timeoutMs / 1000}s`, 'raise --timeout (0 = no limit)');
  }
  return reason;
}

function pskFromEnv(env: Record<string, string | undefined>): PskAuth | undefined {
  const key = env.CLAIR_PSK;
  if (!key) return undefined;
  if (!isBase64Key(key)) {
    throw new UsageError('CLAIR_PSK is not a base64 key', "set it to Clair's auth.psk.key exactly as in Clair's config");
  }
  return { key, issuer: env.CLAIR_PSK_ISSUER || 'docker-clair' };
}

async function readCaFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new UsageError(`cannot read --clair-cacert ${path} (${errnoCode(error) ?? String(error)})`, 'give a PEM file of CA certificates');
  }
}

function isRemote(image: ImageArchive | RemoteImage): image is RemoteImage {
  return (image as RemoteImage).kind === 'remote';
}
