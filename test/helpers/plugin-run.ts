// Running the packaged plugin end to end: dist/docker-clair installed into a temporary DOCKER_CONFIG and run by
// the real docker CLI as `docker --config <tmp> -H <daemon> clair scan …`, each child asynchronously in its own
// process group (a watchdog kills a hung one), plus the strace-based zero-disk check.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertValidReport } from './report-schema.js';
import { fileWrites, isHarmlessDevice, parseStrace, processTree, straceArgs } from './strace.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BINARY = path.join(ROOT, 'dist', 'docker-clair');
/** A child still running after this is killed (its whole process group), so a hang fails instead of blocking. */
const CHILD_DEADLINE_MS = 150_000;

export interface InstalledPlugin {
  /** A scratch directory: the children's working directory, removed by `remove()`. */
  scratch: string;
  /** The DOCKER_CONFIG the plugin is installed into. */
  config: string;
  /** The installed executable. */
  installed: string;
  remove(): void;
}

/** Installs dist/docker-clair into a fresh DOCKER_CONFIG with scripts/install-plugin.mjs, as a user would. */
export function installPlugin(prefix: string): InstalledPlugin {
  assert.ok(existsSync(BINARY), `${BINARY} is missing: run \`npm run package\` first (npm test does)`);
  const scratch = mkdtempSync(path.join(os.tmpdir(), prefix));
  const config = path.join(scratch, 'docker-config');
  const install = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'install-plugin.mjs')], {
    env: { ...process.env, DOCKER_CONFIG: config }, encoding: 'utf8', timeout: 120_000,
  });
  assert.equal(install.status, 0, `install-plugin failed:\n${install.stdout}\n${install.stderr}`);
  const installed = path.join(config, 'cli-plugins', 'docker-clair');
  assert.ok(existsSync(installed), `install-plugin did not create ${installed}`);
  return { scratch, config, installed, remove: () => rmSync(scratch, { recursive: true, force: true }) };
}

/** The environment of every child: nothing that could pick another daemon, config or Clair, plus `extra`. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(DOCKER_|CLAIR_)/.test(k)) delete env[k];
  }
  env.NO_COLOR = '1';
  return { ...env, ...extra };
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** What arrived on extra pipes (fd 3, 4, …), in order. */
  extra: string[];
}

export interface Launched {
  child: ChildProcess;
  done: Promise<Finished>;
}

/** Starts a child in its own process group (so a watchdog can kill everything it started) with piped stdio. */
export function launch(cmd: string, args: string[], options: { cwd: string; extraPipes?: number; env?: NodeJS.ProcessEnv }): Launched {
  const extraPipes = options.extraPipes ?? 0;
  const child = spawn(cmd, args, {
    env: childEnv(options.env),
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', ...Array.from({ length: extraPipes }, () => 'pipe' as const)],
  });
  const chunks: string[][] = Array.from({ length: 2 + extraPipes }, () => []);
  for (let fd = 1; fd < 3 + extraPipes; fd++) {
    const stream = child.stdio[fd] as NodeJS.ReadableStream | null;
    stream?.setEncoding('utf8');
    stream?.on('data', (s: string) => chunks[fd - 1]?.push(s));
  }
  const watchdog = setTimeout(() => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch { /* already gone */ }
  }, CHILD_DEADLINE_MS);
  watchdog.unref();
  const done = new Promise<Finished>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(watchdog);
      const text = chunks.map((c) => c.join(''));
      resolve({ code, signal, stdout: text[0] ?? '', stderr: text[1] ?? '', extra: text.slice(2) });
    });
  });
  return { child, done };
}

export function describeRun(r: Finished): string {
  return `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout.slice(0, 4000)}\n--- stderr\n${r.stderr}`;
}

export function stderrLines(r: Finished): string[] {
  return r.stderr.split('\n').filter((l) => l !== '');
}

export interface JsonImage {
  image: { ref: string; id: string };
  verdict: string;
  reason: string;
  packageCount: number;
  distribution?: { id: string; version: string; prettyName?: string } | null;
  vulnerabilities: { id: string; severity: string; package: { name: string; version: string }; fixedIn: string | null; layer: string | null }[];
}

/** Parses a JSON report and checks it against schema/report.schema.json. */
export function parseReport(text: string, run?: Finished): { images: JsonImage[] } {
  let doc: { images: JsonImage[] };
  try {
    doc = JSON.parse(text) as { images: JsonImage[] };
  } catch (error) {
    throw new Error(`the report is not JSON (${(error as Error).message})${run ? `\n${describeRun(run)}` : ''}`);
  }
  assertValidReport(text);
  return doc;
}

export interface TracedScan {
  run: Finished;
  /** Calls of the plugin process (all its threads) that can write to the file system. */
  writes: ReturnType<typeof fileWrites>;
  pluginPids: Set<number>;
  /** /proc/<sh>/io after the traced tree was reaped: the I/O of strace, docker and the plugin together. */
  io: Record<string, number>;
  /** Write-mode calls of every traced process (docker and strace's helpers too), to explain a non-zero write_bytes. */
  allWrites: ReturnType<typeof fileWrites>;
}

/**
 * `docker ARGS` (a `clair scan`) under `strace -f`, inside `sh -c` whose /proc/$$/io is read once strace (and with
 * it docker and the plugin) has been reaped: Linux adds a reaped child's I/O counters to its parent's. strace's
 * own output goes through a pipe to this process (fd 3), not to a file; the io counters come back on fd 4.
 */
export async function tracedDockerScan(plugin: InstalledPlugin, dockerArgs: string[], env?: NodeJS.ProcessEnv): Promise<TracedScan> {
  const script = 'strace "$@"; rc=$?; cat /proc/$$/io >&4; exit $rc';
  const launched = launch('sh', ['-c', script, 'sh', ...straceArgs('|cat >&3'), 'docker', ...dockerArgs],
    { cwd: plugin.scratch, extraPipes: 2, ...(env ? { env } : {}) });
  const run = await launched.done;
  const events = parseStrace(run.extra[0] ?? '');
  const pluginPids = processTree(events, (file, argv) => file === plugin.installed && argv.includes('scan'));
  assert.ok(pluginPids.size > 1,
    `strace did not show the plugin's execve and threads:\n${describeRun(run)}\n--- strace\n${(run.extra[0] ?? '').slice(0, 3000)}`);
  const io = Object.fromEntries((run.extra[1] ?? '').split('\n').filter(Boolean).map((l) => {
    const [k = '', v = ''] = l.split(':');
    return [k.trim(), Number(v.trim())];
  }));
  assert.equal(typeof io.write_bytes, 'number', `no /proc/PID/io counters:\n${run.extra[1]}`);
  const everyPid = new Set(events.map((e) => e.pid));
  return { run, writes: fileWrites(events, pluginPids), pluginPids, io, allWrites: fileWrites(events, everyPid) };
}

/**
 * Two pages of page cache dirtied by the traced tree were seen in some runs with no write-mode call by any traced
 * process (so not the plugin's file writes); an image's bytes, even layers reduced to Clair v1's files (≥ 80 KB),
 * are far more.
 */
const UNEXPLAINED_PAGES_BYTES = 2 * 4096;

/**
 * The plugin made no write-mode open, create, rename, truncate or mkdir; nothing in the traced tree did; and the
 * kernel counted no more than the two stray pages.
 */
export function assertNothingWritten(t: TracedScan): void {
  const suspicious = t.writes.filter((w) => !(w.paths.length === 1 && isHarmlessDevice(w.paths[0] as string) && /^open/.test(w.call)));
  assert.deepEqual(suspicious.map((w) => w.line), [], 'the plugin must not create, open for writing, rename, truncate or mkdir anything');
  const writes = t.allWrites.filter((w) => !(w.paths.length === 1 && isHarmlessDevice(w.paths[0] as string) && /^open/.test(w.call)));
  const detail = `write_bytes of docker + plugin: ${JSON.stringify(t.io)}; write-mode calls of every traced process:\n` +
    `${writes.map((w) => w.line).join('\n') || '(none)'}`;
  if (writes.length > 0) assert.equal(t.io.write_bytes, 0, detail);
  else assert.ok((t.io.write_bytes ?? NaN) <= UNEXPLAINED_PAGES_BYTES, detail);
}
