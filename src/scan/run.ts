// One `docker clair scan` run: every image through the pipeline, then policy, then the reports.
//   ① resolve the Docker endpoint, reach the daemon (or open the --input archive)  ② inspect each image
//   ③ export + serve layers + index with Clair (the Clair engine)  ④ verdict per image  ⑤ reports, exit code
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ScanOptions } from '../cli/options/scan-options.js';
import { isBase64Key, type PskAuth } from '../clair/auth.js';
import { createDockerClient } from '../docker/client.js';
import { resolveEndpoint } from '../docker/endpoint.js';
import { probeSaveStream, SaveArchiveFile } from '../docker/archive-source.js';
import { DockerImageSource, type ImageSource } from '../docker/image-source.js';
import { chooseLayerBinding, containerNetworkBinding } from '../layer-server/advertise.js';
import type { LayerStep } from '../findings/model.js';
import type { DockerGlobalFlags } from '../plugin/argv.js';
import { evaluateScan, exitCodeFor } from '../policy/verdict.js';
import type { ImageOutcome, Report } from '../report/model.js';
import { outcomesOf } from '../report/model.js';
import { IMPLEMENTED_FORMATS, writeReports } from '../report/outputs.js';
import {
  DockerClairError,
  NotImplementedError,
  TimeoutError,
  UsageError,
  errnoCode,
  type ExitCode,
} from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { lineProgress, silentProgress, type ProgressSink } from '../runtime/progress.js';
import { VERSION } from '../version.js';
import { DaemonImageArchive, FileImageArchive, StreamImageArchive, type ImageArchive } from './image-archive.js';
import { resolveClairApi } from '../clair/detect.js';
import { createClairEngine } from '../clair/engine.js';
import { loadRunPolicy } from './run-policy.js';
import type { ManagedClairEndpoint } from '../server/managed-server.js';

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

export async function runScan(options: Readonly<ScanOptions>, globals: DockerGlobalFlags, deps: ScanDeps, stats?: RunStats): Promise<ExitCode> {
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
  options: Readonly<ScanOptions>,
  globals: DockerGlobalFlags,
  deps: ScanDeps,
  signal: AbortSignal,
  stats?: RunStats,
): Promise<ExitCode> {
  const { log } = deps;
  for (const output of options.outputs) {
    if (!IMPLEMENTED_FORMATS.has(output.format)) {
      throw new NotImplementedError(`--format ${output.format} is not implemented yet`, 'use --format table or --format json');
    }
  }
  let indexerUrl = options.indexerUrl ?? options.clairUrl;
  let matcherUrl = options.matcherUrl ?? options.clairUrl;
  // Without --clair/CLAIR_ADDR, the managed Clair (docker clair server up), with its own PSK.
  let managed: ManagedClairEndpoint | undefined;
  if (!indexerUrl || !matcherUrl) {
    const { findManagedClair } = await import('../server/discover.js');
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

  const images = options.input === undefined
    ? await daemonImages(options, globals, deps, signal)
    : await inputImages(options.input, options.images, deps, signal);

  // --clair-api auto probes Clair once; the engine speaks the API found.
  const api = await resolveClairApi(options.clairApi ?? 'auto', options, { ...(ca ? { ca } : {}), signal });
  log.debug(`Clair API: ${api.api} (${api.why})`);
  const binding = managed?.gateway && !options.layerAddress
    ? containerNetworkBinding(managed.gateway)
    : await chooseLayerBinding(indexerUrl, options.layerAddress, images.publishedPortGateway);
  log.debug(`layer server address: ${binding.advertiseHost} (${binding.why})`);
  const engine = await createClairEngine(api.api, {
    indexerUrl, matcherUrl, psk, ca, binding, maxDbAgeMs: options.maxDbAgeMs, now: clock, v1BufferBytes: options.v1BufferBytes,
  });
  // Progress is for people watching a terminal; CI logs get the report and errors only.
  const progress = options.progress && deps.stderrIsTTY ? lineProgress(deps.stderr) : silentProgress;

  const outcomes: ImageOutcome[] = [];
  for (const { ref, open } of images.targets) {
    try {
      const archive = await open(progress);
      const result = await engine.scan(archive, { log, progress, signal });
      const steps = images.layerSteps?.(result.scan.image.id);
      if (steps) result.scan.layers = steps;
      if (stats) {
        stats.layersSent += result.layersSent;
        stats.bytesSent += result.bytesSent;
      }
      const { suppressed, ...verdict } = evaluateScan(result.scan, { failOn: options.failOn, filters: policy.filters });
      outcomes.push({ kind: 'scanned', scan: result.scan, verdict, suppressed });
    } catch (error) {
      if (signal.aborted || !(error instanceof DockerClairError)) throw error;
      // A lone image's error is the run's error. With several, one failing does not stop the others:
      // it is reported, kept in the report, and ranks first in the exit code.
      if (images.targets.length === 1) throw error;
      log.warn(`${ref}: ${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}`);
      outcomes.push({ kind: 'error', image: { ref }, error: { message: error.message, code: error.code } });
    } finally {
      if (stats) stats.saves = images.passes();
    }
  }

  const report: Report = {
    tool: { name: 'docker-clair', version: VERSION },
    generatedAt: (deps.clock ?? (() => new Date()))().toISOString(),
    failOn: options.failOn,
    ...(options.minSeverity ? { minSeverity: options.minSeverity } : {}),
    ...(policy.ignoreFile ? { ignoreFile: policy.ignoreFile } : {}),
    ignoreUnfixed: options.ignoreUnfixed,
    expiredRules: policy.expired,
    images: outcomes,
  };
  const stdoutColor = options.color !== false && !deps.env.NO_COLOR && deps.stdoutIsTTY;
  await writeReports(report, options.outputs, { stdout: deps.stdout, stdoutColor, ...(deps.columns ? { width: deps.columns } : {}) });
  return exitCodeFor(outcomesOf(report));
}

/** The images of a run, each opened (inspected, selected, probed) when its turn comes. */
interface RunImages {
  targets: { ref: string; open: (progress: ProgressSink) => Promise<ImageArchive> }[];
  /** Passes over the archives so far (RunStats.saves). */
  passes: () => number;
  /** The build step of each layer of an image (by image ID), when the daemon's history told it. */
  layerSteps?: (id: string) => LayerStep[] | undefined;
  /** The daemon's answer to "which gateway reaches a container publishing this port" (Clair in Docker). */
  publishedPortGateway?: (port: number) => Promise<string | undefined>;
}

/** The images named on the command line, from the Docker daemon. */
async function daemonImages(options: Readonly<ScanOptions>, globals: DockerGlobalFlags, deps: ScanDeps,
  signal: AbortSignal): Promise<RunImages> {
  const { log } = deps;
  let source = deps.source;
  if (!source) {
    const endpoint = await resolveEndpoint(globals, deps.env, deps.home);
    for (const warning of endpoint.warnings) log.warn(warning);
    log.debug(`docker endpoint: ${endpoint.host} (context "${endpoint.contextName}", chosen by ${endpoint.source}${endpoint.tls ? `, TLS${endpoint.tls.verify ? '' : ' without verification'}` : ''})`);
    source = new DockerImageSource(await createDockerClient(endpoint), endpoint);
  }
  const daemon = await source.connect({ signal });
  log.debug(`docker daemon: Engine ${daemon.version}, API ${daemon.apiVersion}, ${daemon.os}/${daemon.arch}`);
  const from = source;
  const layerStepsById = new Map<string, LayerStep[]>();
  return {
    layerSteps: (id: string) => layerStepsById.get(id),
    targets: options.images.map((ref) => ({
      ref,
      open: async (progress) => {
        const image = await from.inspect(ref);
        const steps = await from.layerSteps?.(image);
        if (steps) layerStepsById.set(image.id, steps);
        log.debug(`image ${ref}: ${image.id}, ${image.diffIds.length} layer(s), ${image.os}/${image.architecture}`);
        progress({ stage: 'inspect', image: ref, layers: image.diffIds.length, bytes: image.size });
        return new DaemonImageArchive(from, image);
      },
    })),
    passes: () => from.saveCount,
    ...(from.publishedPortGateway ? { publishedPortGateway: (port: number) => from.publishedPortGateway!(port) } : {}),
  };
}

/**
 * `--input PATH|-`: the images of a `docker save` archive, no daemon involved. A regular file is walked once
 * (headers and metadata) and read once more per image Clair does not have yet; anything else (stdin, a FIFO)
 * is read once, and holds one image.
 */
async function inputImages(input: string, refs: readonly string[], deps: ScanDeps, signal: AbortSignal): Promise<RunImages> {
  const { log } = deps;
  const stream = input === '-' || !(await SaveArchiveFile.isRegularFile(input));
  if (!stream) {
    const file = await SaveArchiveFile.open(input, { signal });
    log.debug(`--input ${input}: ${file.images.length} image(s), ${file.stats.walkBytes} bytes of headers and metadata read`);
    const targets = refs.length > 0
      ? refs.map((ref) => ({ ref, select: () => file.select(ref) }))
      : file.images.map((image) => ({ ref: image.repoTags[0] ?? image.id, select: () => image }));
    return {
      targets: targets.map(({ ref, select }) => ({
        ref,
        open: async (progress) => {
          const image = select();
          log.debug(`image ${ref}: ${image.id} in ${input} (${image.format}), ${image.layers.length} layer(s), ${image.os}/${image.architecture}`);
          progress({ stage: 'inspect', image: ref, layers: image.layers.length, bytes: image.size });
          return new FileImageArchive(file, image, ref);
        },
      })),
      passes: () => file.stats.reads,
    };
  }
  if (refs.length > 1) {
    throw new UsageError(`--input ${input} is read once and holds one image, but ${refs.length} images were named`,
      'name at most one IMAGE, or save the archive to a file and pass --input FILE');
  }
  const origin = input === '-' ? 'stdin' : input;
  let archive: StreamImageArchive | undefined;
  return {
    targets: [{
      ref: refs[0] ?? origin,
      open: async () => {
        const source = input === '-' ? stdinOf(deps) : createReadStream(input);
        const head = await probeSaveStream(source, { signal });
        log.debug(`--input ${input}: ${head.layout} layout, ${head.probed} bytes probed before the first layer`);
        archive = new StreamImageArchive(head, origin, refs[0]);
        return archive;
      },
    }],
    passes: () => archive?.passes ?? 0,
  };
}

function stdinOf(deps: ScanDeps): Readable {
  const stdin = deps.stdin;
  if (!stdin) throw new UsageError('--input - needs a standard input', 'give --input a file path instead');
  if ((stdin as { isTTY?: boolean }).isTTY) {
    throw new UsageError('--input - reads a `docker save` archive from stdin, which is a terminal',
      'pipe one in (docker save IMAGE | docker clair scan --input - …), or pass --input FILE');
  }
  return stdin;
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
