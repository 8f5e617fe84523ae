#!/usr/bin/env node
// Benchmarks for the packaged plugin (dist/docker-clair; `npm run package` first).
//
//   npm run bench                          every available benchmark
//   npm run bench -- metadata              one (or several) by name
//   npm run bench -- metadata --runs 50 --warmup 5
//   npm run bench -- scan [--runs 5 --warmup 1]
//   npm run bench -- scan-real             only the real-Clair part of scan (scan-double: only the double's)
//   npm run bench -- scan-v1 [--runs 3 --warmup 1]
//   npm run bench -- scan --binary PATH    another build of the plugin instead of dist/docker-clair
//   npm run bench -- scan --idle-wait 60   before each timed step, wait up to 60 s (default) for an idle machine
//   npm run bench -- --list
//
//   metadata  startup cost of `docker-clair docker-cli-plugin-metadata` vs `node -e 0`
//   scan      cold/warm scan vs `docker save > /dev/null` on a ~200 MB and a ~816 MB local image, against a
//             fresh Clair double per cold run: wall time, peak RSS, docker save calls, client bytes written
//             (see docs/benchmarks.md); then the same against a fresh real Clair v4.9 + PostgreSQL per cold run
//             (scripts/real-clair.sh), with where the time goes from Clair's log. `scan-double` and `scan-real`
//             run one part only.
//   scan-v1   the same against the double in Clair v1 mode (--clair-api v1), with --v1-buffer 256MiB (default) and
//             64MiB: wall time, peak RSS against the buffer cap, docker save passes, client bytes written
//
// Exits non-zero only when a benchmark cannot run (missing binary, a command fails); a missed goal is
// reported as MISS but is a measurement, not an error.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, closeSync, copyFileSync, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync,
  statSync, watch,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDockerProxy } from './bench-docker-proxy.mjs';
import { ROOT, binaryPath, loadConfig } from './bundle.mjs';

const rel = (p) => {
  const r = path.relative(ROOT, p);
  return r.startsWith('..') ? p : r.split(path.sep).join('/');
};

/** Environment for the measured processes: the caller's NODE_OPTIONS would only slow the reference. */
function benchEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs a command once and returns its wall time in ms; throws if it fails. */
function timeOnce({ label, cmd, args, env, check }) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw new Error(`${label}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${label}: exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`.trim());
  check?.(r);
  return ms;
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { median, mean, min: sorted[0], max: sorted[sorted.length - 1], n: samples.length };
}

/**
 * Measures several commands with warm-ups, interleaving them run by run (and alternating the order)
 * so that noise from the machine hits all of them alike. Returns one stats object per command.
 */
function measure(commands, { runs, warmup }) {
  for (let i = 0; i < warmup; i++) for (const c of commands) timeOnce(c);
  const samples = commands.map(() => []);
  for (let i = 0; i < runs; i++) {
    const order = commands.map((_, k) => k);
    if (i % 2) order.reverse();
    for (const k of order) samples[k].push(timeOnce(commands[k]));
  }
  return commands.map((c, k) => ({ label: c.label, ...stats(samples[k]) }));
}

const fmt = (s) =>
  `median ${s.median.toFixed(1)} ms  (mean ${s.mean.toFixed(1)}, min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, n=${s.n})`;

async function hostBinaryAndNode(override) {
  const config = await loadConfig();
  const binary = override ? path.resolve(override) : binaryPath(config, config.hostTarget);
  if (!existsSync(binary)) throw new Error(`${rel(binary)} is missing: run \`npm run package\` first`);
  const node = path.join(config.cacheDir, `node-${config.hostTarget}-${config.node}`, 'bin', 'node');
  if (!existsSync(node)) throw new Error(`${rel(node)} is missing: run \`npm run package\` first (it fetches the runtime)`);
  return { config, binary, node };
}

// ---------------------------------------------------------------------------------------------------------------
// scan: cold and warm scans of local images vs `docker save > /dev/null`, against a fresh Clair double.

const SCAN_IMAGES = [
  { name: '200m', ref: 'docker-clair-bench/200m:latest' },
  { name: '800m', ref: 'docker-clair-bench/800m:latest' },
];
const SCAN_GOALS = { ratio: 1.05, rssBytes: 80e6, rssRatio: 1.2, savesCold: 1, savesWarm: 0, writeBytes: 0 };
const TIME_BIN = '/usr/bin/time';
const TIME_FMT = 'BENCH-TIME exit=%x rss_kb=%M wall_s=%e user_s=%U sys_s=%S';
const RUN_TIMEOUT_MS = 15 * 60_000;
const CLK_TCK = 100; // USER_HZ, 100 on every Linux the benchmark targets

/** The daemon's unix socket path: DOCKER_HOST if it is unix://, else the default socket. */
function daemonSocket() {
  const host = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  if (!host.startsWith('unix://')) throw new Error(`scan needs a unix-socket daemon (DOCKER_HOST=${host})`);
  return host.slice('unix://'.length);
}

/** Spawns a command, collecting its output; resolves with exit code, output and wall time (ms). */
function runAsync(cmd, args, { env, cwd = ROOT, timeoutMs = RUN_TIMEOUT_MS, onSpawn } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) onSpawn?.(child.pid);
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        ms: performance.now() - t0,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/**
 * Runs `cmd args` under /usr/bin/time inside `sh`, then prints the shell's /proc/PID/io (Linux adds the I/O of
 * reaped children to their parent, so it covers the command). `devNull` sends the command's stdout to /dev/null.
 */
async function runMeasured(label, cmd, args, { env, devNull = false, sample = false }) {
  const script = `${TIME_BIN} -f "$0" "$@"${devNull ? ' >/dev/null' : ''}; cat /proc/$$/io >&2`;
  const startedAt = Date.now();
  const sampler = sample ? new MemorySampler(cmd) : undefined;
  const r = await runAsync('sh', ['-c', script, TIME_FMT, cmd, ...args], { env, onSpawn: (pid) => sampler?.start(pid) });
  sampler?.stop();
  const endedAt = Date.now();
  if (r.code !== 0 || r.signal) throw new Error(`${label}: wrapper exit ${r.code ?? r.signal}\n${r.stderr}`.trim());
  const m = /BENCH-TIME exit=(\d+) rss_kb=(\d+) wall_s=([\d.]+) user_s=([\d.]+) sys_s=([\d.]+)/.exec(r.stderr);
  const io = Object.fromEntries([...r.stderr.matchAll(/^(\w+): (\d+)$/gm)].map((x) => [x[1], Number(x[2])]));
  if (!m || io.write_bytes === undefined) throw new Error(`${label}: no /usr/bin/time or /proc io output\n${r.stderr}`.trim());
  const cmdStderr = r.stderr
    .split('\n')
    .filter((l) => !/^BENCH-TIME |^\w+: \d+$|^Command exited with non-zero status/.test(l))
    .join('\n')
    .trim();
  return {
    wallMs: r.ms,
    startedAt,
    endedAt,
    exit: Number(m[1]),
    rssKb: Number(m[2]),
    cpuS: Number(m[4]) + Number(m[5]),
    io,
    stdout: r.stdout,
    stderr: cmdStderr,
    sampled: sampler?.result(),
  };
}

function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Samples, every 100 ms, RssAnon and RssFile (/proc/PID/status) of the process running the executable `exe` as a
 * grandchild of the wrapper shell (sh -> time -> command): which part of the RSS is the mapped executable and
 * which is memory the process allocated. Sampling can miss a short peak; /usr/bin/time's figure is the exact peak.
 */
class MemorySampler {
  constructor(exe) {
    this.exe = exe;
    this.anon = 0;
    this.file = 0;
    this.samples = 0;
  }

  start(shPid) {
    this.shPid = shPid;
    this.timer = setInterval(() => this.tick(), 100);
    this.tick();
  }

  tick() {
    if (this.pid === undefined) {
      for (const c of childrenOf(this.shPid)) {
        for (const g of childrenOf(c)) {
          try {
            if (readlinkSync(`/proc/${g}/exe`) === this.exe) this.pid = g;
          } catch {
            // gone
          }
        }
      }
      if (this.pid === undefined) return;
    }
    try {
      const st = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? 0) * 1024;
      this.anon = Math.max(this.anon, kb('RssAnon'));
      this.file = Math.max(this.file, kb('RssFile'));
      this.samples++;
    } catch {
      // exited
    }
  }

  stop() {
    clearInterval(this.timer);
  }

  result() {
    return this.samples > 0 ? { anon: this.anon, file: this.file, samples: this.samples } : undefined;
  }
}

/**
 * utime+stime of a process, in seconds; undefined when it is gone or unreadable. `reaped`: also the CPU of its
 * children that have exited and been waited for (cutime+cstime).
 */
function procCpuS(pid, { reaped = false } = {}) {
  if (!pid) return undefined;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0)) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of a PostgreSQL cluster: the postmaster, its live children (the backends of Clair's connections,
 * checkpointer, walwriter …) and the children it has reaped. A backend that exits between two snapshots moves
 * from the live sum into the postmaster's cutime, so a difference of two snapshots counts it once.
 */
function pgTreeCpuS(postmasterPid) {
  const own = procCpuS(postmasterPid, { reaped: true });
  if (own === undefined) return undefined;
  return childrenOf(postmasterPid).reduce((a, c) => a + (procCpuS(c, { reaped: true }) ?? 0), own);
}

function procWriteBytes(pid) {
  if (!pid) return undefined;
  try {
    const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Busy and total CPU seconds of the whole machine (all cores) from /proc/stat. */
function machineCpuS() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / CLK_TCK, total: (busy + idle + iowait) / CLK_TCK };
}

/**
 * Waits (up to `maxMs`) until the machine has been nearly idle for one second (< `threshold` cores busy), so that
 * other work on a shared machine disturbs the next measurement less. Returns how long it waited and whether the
 * machine was idle when it gave up waiting.
 */
async function waitForIdle(maxMs, threshold = 0.3) {
  const t0 = performance.now();
  let cores = 0;
  for (;;) {
    const a = machineCpuS();
    const s0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const b = machineCpuS();
    cores = (b.busy - a.busy) / ((performance.now() - s0) / 1000);
    const waited = performance.now() - t0;
    if (cores < threshold) return { waited, idle: true, cores };
    if (waited >= maxMs) return { waited, idle: false, cores };
  }
}

/** The dockerd serving `socket` (by /proc comm and command line); undefined if it cannot be told apart. */
function findDockerd(socket) {
  const found = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'dockerd') continue;
      found.push({ pid: Number(pid), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      // gone meanwhile
    }
  }
  const bySocket = found.filter((d) => d.cmdline.includes(socket));
  if (bySocket.length === 1) return bySocket[0].pid;
  return found.length === 1 ? found[0].pid : undefined;
}

/**
 * A snapshot of the CPU counters the scan benchmark compares before/after a run. `doublePid` is the Clair double,
 * or the real Clair with `pgPid` its PostgreSQL postmaster.
 */
function cpuSnapshot(dockerdPid, doublePid, pgPid) {
  return {
    machine: machineCpuS(),
    dockerd: procCpuS(dockerdPid),
    dockerdWrite: procWriteBytes(dockerdPid),
    double: procCpuS(doublePid),
    doubleWrite: pgPid ? procWriteBytes(doublePid) : undefined,
    pg: pgPid ? pgTreeCpuS(pgPid) : undefined,
  };
}

function cpuDelta(a, b) {
  const d = (x, y) => (x === undefined || y === undefined ? undefined : y - x);
  return {
    machineBusy: b.machine.busy - a.machine.busy,
    machineTotal: b.machine.total - a.machine.total,
    dockerd: d(a.dockerd, b.dockerd),
    dockerdWrite: d(a.dockerdWrite, b.dockerdWrite),
    double: d(a.double, b.double),
    doubleWrite: d(a.doubleWrite, b.doubleWrite),
    pg: d(a.pg, b.pg),
  };
}

/**
 * Starts a fresh Clair double (`node --import tsx test/double/main.ts`, one process, so its CPU time can be read
 * from /proc) on a free loopback port; resolves once it says it is listening, so its startup is not timed.
 */
async function startDouble(env, extraArgs = []) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/double/main.ts', '--listen', '127.0.0.1:0', ...extraArgs], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  let partial = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Clair double: not listening after 60 s\n${log.join('\n')}`)), 60_000);
    child.stderr.on('data', (chunk) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        log.push(line);
        const m = /listening on (http:\/\/\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    });
    child.once('error', (e) => reject(new Error(`Clair double: ${e.message}`)));
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`Clair double exited (${how}) before listening\n${log.join('\n')}`));
    });
  }).catch(async (error) => {
    child.kill('SIGKILL');
    await exited;
    throw error;
  });
  return {
    url,
    pid: child.pid,
    log,
    /** Index POSTs the double answered with 201 (one per one-layer manifest plus the image's). */
    indexPosts: () => log.filter((l) => /POST \/indexer\/api\/v1\/index_report 201/.test(l)).length,
    /** v1 layer POSTs the double answered with 201 (one per layer Clair v1 indexed). */
    v1LayerPosts: () => log.filter((l) => /POST \/v1\/layers 201/.test(l)).length,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Checks a scan's exit code and JSON report; returns the verdict. Exit 1 (findings) is a finished scan. */
function checkScan(label, r, image) {
  if (r.exit !== 0 && r.exit !== 1) throw new Error(`${label}: exit ${r.exit}\n${r.stderr}`.trim());
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`${label}: stdout is not a JSON report\n${r.stdout.slice(0, 500)}\n${r.stderr}`.trim());
  }
  const img = doc.images?.[0];
  if (img?.image?.id !== image.id) throw new Error(`${label}: report is for ${img?.image?.id}, expected ${image.id}`);
  if (img.verdict !== 'pass' && img.verdict !== 'fail') throw new Error(`${label}: verdict ${img.verdict}: ${img.reason}`);
  return `${img.verdict}, ${img.packageCount} packages, ${img.vulnerabilities.length} findings`;
}

function inspectImage(ref, env) {
  const r = spawnSync('docker', ['image', 'inspect', '-f', '{{.Id}} {{.Size}} {{len .RootFS.Layers}}', ref], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker image inspect ${ref}: ${(r.stderr || '').trim()}`);
  const [id, size, layers] = r.stdout.trim().split(' ');
  return { id, size: Number(size), layers: Number(layers) };
}

/**
 * Splits a cold scan's wall time using the double's request log (each line: ISO time at the end of the request,
 * method, path, status, duration): `before` = from spawn to the start of the first index POST (plugin start,
 * inspect, index_report lookup, the daemon staging the export, the stream up to the first layer); `layers` = from
 * there to the end of the last one-layer index POST (the double fetching, hashing and unpacking every layer as it
 * streams from `docker save`); `after` = the rest (the image manifest, clean-up, matcher, report, exit).
 */
function phases(run, log) {
  const events = [];
  for (const line of log) {
    const m = /^(\S+) (POST|DELETE) \/indexer\/api\/v1\/index_report (\d+) (\d+)ms/.exec(line);
    if (!m) continue;
    const end = Date.parse(m[1]);
    events.push({ method: m[2], status: Number(m[3]), start: end - Number(m[4]), end });
  }
  // The preflight (src/clair/v4/preflight.ts) indexes a probe manifest and deletes it before the export starts: a
  // POST followed directly by a DELETE, before any layer's POST. It is part of `before`, not of `layers`.
  if (events[0]?.method === 'POST' && events[1]?.method === 'DELETE') events.splice(0, 2);
  const posts = events.filter((e) => e.method === 'POST' && e.status === 201);
  if (posts.length < 2) return undefined;
  const layerPosts = posts.slice(0, -1); // the last one is the image manifest, which fetches nothing
  const busy = layerPosts.reduce((a, p) => a + (p.end - p.start), 0);
  return {
    before: layerPosts[0].start - run.startedAt,
    layers: layerPosts[layerPosts.length - 1].end - layerPosts[0].start,
    layerBusy: busy,
    after: run.endedAt - layerPosts[layerPosts.length - 1].end,
    perLayer: layerPosts.map((p) => p.end - p.start),
  };
}

const phasesF = (p) => (p === undefined
  ? 'n/a'
  : `before first layer ${secsF(p.before)}, layers ${secsF(p.layers)} (index POSTs ${p.perLayer.map((ms) => (ms / 1000).toFixed(2)).join(' + ')} s), after ${secsF(p.after)}`);

const median = (xs) => stats(xs).median;
const secsF = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mbF = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const cpuF = (s) => (s === undefined ? 'n/a' : `${s.toFixed(2)}`);
const verdictF = (ok) => (ok ? 'PASS' : 'MISS');

/** One line per run: wall, RSS, CPU of each process, machine load, bytes written. */
function runLine(kind, r, cpu, extra = '', server = 'double') {
  const tracked = r.cpuS + (cpu.dockerd ?? 0) + (cpu.double ?? 0) + (cpu.pg ?? 0);
  return (
    `    ${kind.padEnd(5)} ${secsF(r.wallMs).padStart(8)}  rss ${mbF(r.rssKb * 1024).padStart(8)}` +
    `${r.sampled ? ` (sampled anon ${mbF(r.sampled.anon)}, file ${mbF(r.sampled.file)})` : ''}  ` +
    `cpu s: client ${cpuF(r.cpuS)}, dockerd ${cpuF(cpu.dockerd)}, ${server} ${cpuF(cpu.double)}, ` +
    `${cpu.pg === undefined ? '' : `postgres ${cpuF(cpu.pg)}, `}` +
    `other ${cpuF(cpu.machineBusy - tracked)}; machine busy ${cpuF(cpu.machineBusy)} of ${cpuF(cpu.machineTotal)} cpu-s; ` +
    `dockerd wrote ${cpu.dockerdWrite === undefined ? 'n/a' : mbF(cpu.dockerdWrite)}; ` +
    `client write_bytes ${r.io.write_bytes}${extra}`
  );
}

/** Runs `benchmark(opts, original, copy)` on a private copy of the binary: dist/ may be rebuilt meanwhile. */
async function withPrivateBinary(opts, benchmark) {
  const { binary: original } = await hostBinaryAndNode(opts.binary);
  const binDir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-bin-'));
  try {
    const binary = path.join(binDir, 'docker-clair');
    copyFileSync(original, binary);
    chmodSync(binary, 0o755);
    return await benchmark(opts, original, binary);
  } finally {
    rmSync(binDir, { recursive: true, force: true });
  }
}

/**
 * What both scan benchmarks start with: the bench images (built once, cached by tag), the binary's identity,
 * the dockerd process, the plugin's memory floor (`version`), a timed `docker save`, and the idle wait with
 * its counts.
 */
async function scanBenchSetup(opts, original, binary, socket, env, say) {
  const build = spawnSync('bash', [path.join(ROOT, 'scripts', 'bench-images.sh')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (build.status !== 0) throw new Error(`scripts/bench-images.sh failed (exit ${build.status ?? build.signal})`);
  const images = SCAN_IMAGES.map((i) => ({ ...i, ...inspectImage(i.ref, env) }));
  const dockerdPid = findDockerd(socket);
  const binStat = statSync(original);
  const binHash = createHash('sha256').update(readFileSync(binary)).digest('hex');
  say(`  binary ${rel(original)} (${mbF(binStat.size)}, modified ${binStat.mtime.toISOString()}, sha256 ${binHash.slice(0, 16)}…, run from a private copy); ` +
    `dockerd pid ${dockerdPid ?? 'not identified (no daemon CPU figures)'}; load average at start ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
  for (const img of images) say(`  ${img.ref}: ${img.id.slice(0, 19)}…, ${mbF(img.size)}, ${img.layers} layers`);

  // The plugin's floor: RSS of a command that loads the bundle and does no I/O.
  const base = [];
  for (let i = 0; i < 3; i++) base.push(await runMeasured('docker-clair version', binary, ['version'], { env, devNull: true }));
  const baseRss = Math.max(...base.map((r) => r.rssKb * 1024));
  say(`  baseline: \`docker-clair version\` peak RSS ${mbF(baseRss)} (max of 3), wall ${secsF(median(base.map((r) => r.wallMs)))}`);

  const save = async (img, runEnv = env) => {
    const before = cpuSnapshot(dockerdPid);
    const r = await runMeasured(`docker save ${img.ref}`, 'docker', ['save', img.ref], { env: runEnv, devNull: true });
    const cpu = cpuDelta(before, cpuSnapshot(dockerdPid));
    if (r.exit !== 0) throw new Error(`docker save ${img.ref}: exit ${r.exit}\n${r.stderr}`.trim());
    return { r, cpu };
  };

  const idleMs = opts.idleWait * 1000;
  const idleCount = { waits: 0, misses: 0 };
  const idle = async () => {
    if (idleMs === 0) return '';
    const w = await waitForIdle(idleMs);
    idleCount.waits++;
    if (!w.idle) idleCount.misses++;
    return w.idle ? `; idle after ${(w.waited / 1000).toFixed(0)} s` : `; NOT idle after ${(w.waited / 1000).toFixed(0)} s (${w.cores.toFixed(1)} cores busy)`;
  };
  return { images, dockerdPid, baseRss, save, idleMs, idle, idleCount };
}

function scanBenchmark(opts) {
  return withPrivateBinary(opts, scanBenchmarkWith);
}

async function scanBenchmarkWith(opts, original, binary) {
  const socket = daemonSocket();
  const env = { ...benchEnv(), DOCKER_HOST: `unix://${socket}` };
  const lines = [];
  const say = (line) => {
    console.log(line);
    lines.push(line);
  };

  const { images, dockerdPid, baseRss, save, idleMs, idle, idleCount } = await scanBenchSetup(opts, original, binary, socket, env, say);

  const scanArgs = (url, img) => ['scan', '--clair', url, '-q', '--format', 'json', img.ref];
  /** A fresh double; a cold scan, then a warm rescan on the same double. */
  const coldAndWarm = async (img, runEnv = env, between = () => {}) => {
    const dbl = await startDouble(benchEnv());
    try {
      const before = cpuSnapshot(dockerdPid, dbl.pid);
      const cold = await runMeasured(`cold scan of ${img.ref}`, binary, scanArgs(dbl.url, img), { env: runEnv, sample: true });
      const coldCpu = cpuDelta(before, cpuSnapshot(dockerdPid, dbl.pid));
      const coldVerdict = checkScan(`cold scan of ${img.ref}`, cold, img);
      const coldPosts = dbl.indexPosts();
      const coldPhases = phases(cold, dbl.log);
      if (coldPosts < 2) throw new Error(`cold scan of ${img.ref}: the double indexed ${coldPosts} manifest(s); was it cold?`);
      between();
      const before2 = cpuSnapshot(dockerdPid, dbl.pid);
      const warm = await runMeasured(`warm scan of ${img.ref}`, binary, scanArgs(dbl.url, img), { env: runEnv, sample: true });
      const warmCpu = cpuDelta(before2, cpuSnapshot(dockerdPid, dbl.pid));
      checkScan(`warm scan of ${img.ref}`, warm, img);
      const warmPosts = dbl.indexPosts() - coldPosts;
      return { cold, coldCpu, coldVerdict, coldPosts, coldPhases, warm, warmCpu, warmPosts };
    } finally {
      await dbl.stop();
    }
  };


  const results = [];
  for (const img of images) {
    say(`  ${img.name}: ${opts.warmup} warm-up round(s) (save + cold scan, discarded), then ${opts.runs} rounds, save and cold scan interleaved`);
    for (let i = 0; i < opts.warmup; i++) {
      await save(img);
      await coldAndWarm(img);
    }
    const saves = [];
    const scans = [];
    for (let i = 0; i < opts.runs; i++) {
      const steps = [
        async () => {
          const waited = await idle();
          const s = await save(img);
          saves.push(s);
          say(runLine('save', s.r, s.cpu, waited));
        },
        async () => {
          const waited = await idle();
          const c = await coldAndWarm(img);
          scans.push(c);
          say(runLine('cold', c.cold, c.coldCpu, `; ${c.coldVerdict}; double indexed ${c.coldPosts} manifests${waited}`));
          say(`          cold scan phases: ${phasesF(c.coldPhases)}`);
          say(runLine('warm', c.warm, c.warmCpu, `; double indexed ${c.warmPosts} manifests`));
        },
      ];
      if (i % 2) steps.reverse();
      for (const step of steps) await step();
    }

    // Observed run: the same cold scan + warm rescan with DOCKER_HOST pointing at a counting proxy in front of the
    // daemon socket (not timed with the rounds above: the proxy copies every byte once more). A `docker save`
    // through the proxy gives the reference export's time to first byte.
    if (idleMs > 0) await waitForIdle(idleMs);
    const dir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-'));
    const proxy = await startDockerProxy({ listenPath: path.join(dir, 'docker.sock'), upstreamPath: socket });
    let observed;
    try {
      const proxyEnv = { ...env, DOCKER_HOST: `unix://${proxy.path}` };
      await save(img, proxyEnv);
      const refSave = proxy.saves();
      proxy.reset();
      let coldSaves;
      const c = await coldAndWarm(img, proxyEnv, () => {
        coldSaves = proxy.saves();
        proxy.reset();
      });
      const warmSaves = proxy.saves();
      observed = { refSave, coldSaves, warmSaves, warmRequests: proxy.requests.map((r) => `${r.method} ${r.path.replace(/\?.*/, '')}`), c };
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const exp = (reqs) => (reqs.length === 1 && reqs[0].firstByteAt !== undefined
      ? `first byte after ${secsF(reqs[0].firstByteAt - reqs[0].at)}, last after ${secsF(reqs[0].lastByteAt - reqs[0].at)}, ${mbF(reqs[0].bytes)}`
      : `${reqs.length} export requests`);
    say(`    via proxy: docker save: ${exp(observed.refSave)}`);
    say(`    via proxy: cold scan: ${observed.coldSaves.length} export request(s) (${observed.coldSaves.map((r) => r.path).join(', ')}); ${exp(observed.coldSaves)}; ` +
      `scan ${secsF(observed.c.cold.wallMs)}`);
    say(`    via proxy: warm scan: ${observed.warmSaves.length} export request(s); daemon requests: ${observed.warmRequests.join(', ')}`);
    results.push({ img, saves, scans, observed });
  }

  // Table of what was measured, with a verdict per goal.
  const rows = [];
  const per = results.map(({ img, saves, scans, observed }) => {
    const saveMs = median(saves.map((s) => s.r.wallMs));
    const coldMs = median(scans.map((s) => s.cold.wallMs));
    const warmMs = median(scans.map((s) => s.warm.wallMs));
    const coldRss = Math.max(...scans.map((s) => s.cold.rssKb * 1024));
    const warmRss = Math.max(...scans.map((s) => s.warm.rssKb * 1024));
    const sampledMax = (key) => Math.max(...scans.map((s) => s.cold.sampled?.[key] ?? 0));
    const coldAnon = sampledMax('anon');
    const coldFile = sampledMax('file');
    const written = Math.max(...scans.flatMap((s) => [s.cold.io.write_bytes, s.warm.io.write_bytes]),
      observed.c.cold.io.write_bytes, observed.c.warm.io.write_bytes);
    return {
      img,
      saveMs,
      saveRange: [Math.min(...saves.map((s) => s.r.wallMs)), Math.max(...saves.map((s) => s.r.wallMs))],
      coldMs,
      coldRange: [Math.min(...scans.map((s) => s.cold.wallMs)), Math.max(...scans.map((s) => s.cold.wallMs))],
      warmMs,
      ratio: coldMs / saveMs,
      coldRss,
      coldAnon,
      coldFile,
      warmRss,
      written,
      phases: scans.every((s) => s.coldPhases) ? {
        before: median(scans.map((s) => s.coldPhases.before)),
        layers: median(scans.map((s) => s.coldPhases.layers)),
        after: median(scans.map((s) => s.coldPhases.after)),
      } : undefined,
      refSave: observed.refSave.length === 1 ? observed.refSave[0] : undefined,
      savesCold: observed.coldSaves.length,
      savesWarm: observed.warmSaves.length,
      cpu: {
        saveClient: median(saves.map((s) => s.r.cpuS)),
        saveDockerd: saves.every((s) => s.cpu.dockerd !== undefined) ? median(saves.map((s) => s.cpu.dockerd)) : undefined,
        saveOther: median(saves.map((s) => s.cpu.machineBusy - s.r.cpuS - (s.cpu.dockerd ?? 0))),
        saveBusy: median(saves.map((s) => s.cpu.machineBusy)),
        scanClient: median(scans.map((s) => s.cold.cpuS)),
        scanDockerd: scans.every((s) => s.coldCpu.dockerd !== undefined) ? median(scans.map((s) => s.coldCpu.dockerd)) : undefined,
        scanDouble: median(scans.map((s) => s.coldCpu.double)),
        scanOther: median(scans.map((s) => s.coldCpu.machineBusy - s.cold.cpuS - (s.coldCpu.dockerd ?? 0) - s.coldCpu.double)),
        scanBusy: median(scans.map((s) => s.coldCpu.machineBusy)),
        cores: median(scans.map((s) => s.coldCpu.machineTotal / (s.cold.wallMs / 1000))),
      },
    };
  });
  const [small, big] = per;
  const rssRatio = big.coldRss / small.coldRss;
  const col = (s, w = 32) => String(s).padEnd(w);
  const row = (label, a, b, goal) => rows.push(`  ${col(label, 38)}${col(a)}${col(b)}${goal}`);
  const range = ([lo, hi]) => `${(lo / 1000).toFixed(2)}–${(hi / 1000).toFixed(2)}`;
  row('', small.img.name, big.img.name, 'goal');
  row('image size (docker inspect)', `${mbF(small.img.size)}, ${small.img.layers} layers`, `${mbF(big.img.size)}, ${big.img.layers} layers`, '');
  row(`docker save > /dev/null, median`, `${secsF(small.saveMs)} (${range(small.saveRange)})`, `${secsF(big.saveMs)} (${range(big.saveRange)})`, '');
  row('cold scan, median', `${secsF(small.coldMs)} (${range(small.coldRange)})`, `${secsF(big.coldMs)} (${range(big.coldRange)})`, '');
  row('cold scan ÷ save', `${small.ratio.toFixed(2)} ${verdictF(small.ratio <= SCAN_GOALS.ratio)}`,
    `${big.ratio.toFixed(2)} ${verdictF(big.ratio <= SCAN_GOALS.ratio)}`, `<= ${SCAN_GOALS.ratio}`);
  const phaseCell = (p) => (p.phases ? `${(p.phases.before / 1000).toFixed(2)} / ${(p.phases.layers / 1000).toFixed(2)} / ${(p.phases.after / 1000).toFixed(2)} s` : 'n/a');
  row('  before 1st layer / layers / after', phaseCell(small), phaseCell(big), '(medians; see docs/benchmarks.md)');
  const ttfb = (p) => (p.refSave?.firstByteAt !== undefined
    ? `${((p.refSave.firstByteAt - p.refSave.at) / 1000).toFixed(2)} / ${((p.refSave.lastByteAt - p.refSave.at) / 1000).toFixed(2)} s` : 'n/a');
  row('  save first / last byte (proxy)', ttfb(small), ttfb(big), '(one observed save)');
  row('warm rescan, median', secsF(small.warmMs), secsF(big.warmMs), '');
  row('peak RSS, cold scan (max)', `${mbF(small.coldRss)} ${verdictF(small.coldRss <= SCAN_GOALS.rssBytes)}`,
    `${mbF(big.coldRss)} ${verdictF(big.coldRss <= SCAN_GOALS.rssBytes)}`, `<= ${mbF(SCAN_GOALS.rssBytes)}`);
  row('  sampled RssAnon / RssFile (max)', `${mbF(small.coldAnon)} / ${mbF(small.coldFile)}`, `${mbF(big.coldAnon)} / ${mbF(big.coldFile)}`,
    '(allocated / mapped binary; every 100 ms)');
  row('peak RSS, warm rescan (max)', mbF(small.warmRss), mbF(big.warmRss), `(baseline \`version\`: ${mbF(baseRss)})`);
  row(`peak RSS ${big.img.name} ÷ ${small.img.name}`, '', `${rssRatio.toFixed(2)} ${verdictF(rssRatio <= SCAN_GOALS.rssRatio)}`, `<= ${SCAN_GOALS.rssRatio}`);
  const savesOk = (p) => p.savesCold === SCAN_GOALS.savesCold && p.savesWarm === SCAN_GOALS.savesWarm;
  row('docker save calls cold / warm', `${small.savesCold} / ${small.savesWarm} ${verdictF(savesOk(small))}`,
    `${big.savesCold} / ${big.savesWarm} ${verdictF(savesOk(big))}`, `${SCAN_GOALS.savesCold} / ${SCAN_GOALS.savesWarm}`);
  row('client write_bytes (max)', `${small.written} ${verdictF(small.written <= SCAN_GOALS.writeBytes)}`,
    `${big.written} ${verdictF(big.written <= SCAN_GOALS.writeBytes)}`, `${SCAN_GOALS.writeBytes}`);
  row('CPU s during save (median)', `docker ${cpuF(small.cpu.saveClient)}, dockerd ${cpuF(small.cpu.saveDockerd)}`,
    `docker ${cpuF(big.cpu.saveClient)}, dockerd ${cpuF(big.cpu.saveDockerd)}`, '');
  row('  machine busy / other', `${cpuF(small.cpu.saveBusy)} / ${cpuF(small.cpu.saveOther)}`, `${cpuF(big.cpu.saveBusy)} / ${cpuF(big.cpu.saveOther)}`, '');
  row('CPU s during cold scan (median)', `plugin ${cpuF(small.cpu.scanClient)}, dockerd ${cpuF(small.cpu.scanDockerd)}`,
    `plugin ${cpuF(big.cpu.scanClient)}, dockerd ${cpuF(big.cpu.scanDockerd)}`, '');
  row('  double / machine busy / other', `${cpuF(small.cpu.scanDouble)} / ${cpuF(small.cpu.scanBusy)} / ${cpuF(small.cpu.scanOther)}`,
    `${cpuF(big.cpu.scanDouble)} / ${cpuF(big.cpu.scanBusy)} / ${cpuF(big.cpu.scanOther)}`, `(capacity ${big.cpu.cores.toFixed(1)} cpu-s per s)`);
  say(`  results (wall times: median of ${opts.runs}, range in brackets; RSS: max over the rounds; MB = 10^6 bytes)`);
  if (idleMs > 0) say(`  ${idleCount.waits - idleCount.misses} of ${idleCount.waits} timed steps started on an idle machine (< 0.3 cores busy for 1 s, waited up to ${opts.idleWait} s)`);
  else say('  timed steps started without waiting for an idle machine (--idle-wait 0)');
  for (const r of rows) say(r);
  const pass = per.every((p) => p.coldRss <= SCAN_GOALS.rssBytes && savesOk(p) && p.written <= SCAN_GOALS.writeBytes) &&
    big.ratio <= SCAN_GOALS.ratio && small.ratio <= SCAN_GOALS.ratio && rssRatio <= SCAN_GOALS.rssRatio;
  return { pass, lines: [] };
}

// ---------------------------------------------------------------------------------------------------------------
// scan-v1: the same images and machinery as `scan`, against the Clair double in `--api v1` mode, with the default
// --v1-buffer (256 MiB) and with --v1-buffer 64MiB (smaller than the 800m image's 175 MB layers, so any layer that
// arrives before its parent must be read again in a further `docker save` pass).

const V1_BUFFERS = [
  { name: '256MiB (default)', short: '256MiB', args: [], cap: 256 * 1024 * 1024 },
  { name: '64MiB', short: '64MiB', args: ['--v1-buffer', '64MiB'], cap: 64 * 1024 * 1024 },
];

/** The plugin's own account of a v1 scan (its -D output): passes over the save stream, the most bytes buffered. */
function v1Debug(stderr) {
  const m = /Clair v1: (\d+) pass\(es\) over .*?; (\d+) layer read\(s\) skipped for a further pass; at most (\d+) bytes held in memory/.exec(stderr);
  return m ? { passes: Number(m[1]), skipped: Number(m[2]), peakBuffered: Number(m[3]) } : undefined;
}

function scanV1Benchmark(opts) {
  return withPrivateBinary(opts, scanV1BenchmarkWith);
}

async function scanV1BenchmarkWith(opts, original, binary) {
  const socket = daemonSocket();
  const env = { ...benchEnv(), DOCKER_HOST: `unix://${socket}` };
  const say = (line) => console.log(line);

  const { images, dockerdPid, baseRss, save, idleMs, idle, idleCount } = await scanBenchSetup(opts, original, binary, socket, env, say);

  // -D: the plugin logs (to stderr) how many passes it made and the most layer bytes it buffered.
  const scanArgs = (url, img, buf) => ['-D', 'scan', '--clair', url, '--clair-api', 'v1', ...buf.args, '-q', '--format', 'json', img.ref];
  const coldAndWarm = async (img, buf, runEnv = env, between = () => {}) => {
    const dbl = await startDouble(benchEnv(), ['--api', 'v1']);
    try {
      const label = `cold v1 scan (--v1-buffer ${buf.short}) of ${img.ref}`;
      const before = cpuSnapshot(dockerdPid, dbl.pid);
      const cold = await runMeasured(label, binary, scanArgs(dbl.url, img, buf), { env: runEnv, sample: true });
      const coldCpu = cpuDelta(before, cpuSnapshot(dockerdPid, dbl.pid));
      const coldVerdict = checkScan(label, cold, img);
      const coldPosts = dbl.v1LayerPosts();
      if (coldPosts < 1) throw new Error(`${label}: the double indexed no layer; was it cold?`);
      const coldDebug = v1Debug(cold.stderr);
      between();
      const before2 = cpuSnapshot(dockerdPid, dbl.pid);
      const warm = await runMeasured(`warm ${label.slice(5)}`, binary, scanArgs(dbl.url, img, buf), { env: runEnv, sample: true });
      const warmCpu = cpuDelta(before2, cpuSnapshot(dockerdPid, dbl.pid));
      checkScan(`warm ${label.slice(5)}`, warm, img);
      const warmPosts = dbl.v1LayerPosts() - coldPosts;
      return { cold, coldCpu, coldVerdict, coldPosts, coldDebug, warm, warmCpu, warmPosts, warmDebug: v1Debug(warm.stderr) };
    } finally {
      await dbl.stop();
    }
  };
  const debugF = (d) => (d ? `plugin: ${d.passes} pass(es), ${d.skipped} layer read(s) skipped, at most ${mbF(d.peakBuffered)} buffered` : 'plugin: no pass line');


  const results = [];
  for (const img of images) {
    say(`  ${img.name}: ${opts.warmup} warm-up round(s) (save + default-buffer cold scan, discarded), then ${opts.runs} rounds of ` +
      `save, cold scan --v1-buffer ${V1_BUFFERS.map((b) => b.short).join(', cold scan --v1-buffer ')}, order rotating`);
    for (let i = 0; i < opts.warmup; i++) {
      await save(img);
      await coldAndWarm(img, V1_BUFFERS[0]);
    }
    const saves = [];
    const scans = V1_BUFFERS.map(() => []);
    for (let i = 0; i < opts.runs; i++) {
      const steps = [
        async () => {
          const waited = await idle();
          const s = await save(img);
          saves.push(s);
          say(runLine('save', s.r, s.cpu, waited));
        },
        ...V1_BUFFERS.map((buf, k) => async () => {
          const waited = await idle();
          const c = await coldAndWarm(img, buf);
          scans[k].push(c);
          say(runLine(`cold ${buf.short}`, c.cold, c.coldCpu, `; ${c.coldVerdict}; double indexed ${c.coldPosts} layers; ${debugF(c.coldDebug)}${waited}`));
          say(runLine(`warm ${buf.short}`, c.warm, c.warmCpu, `; double indexed ${c.warmPosts} layers; ${debugF(c.warmDebug)}`));
        }),
      ];
      const rot = i % steps.length;
      for (const step of [...steps.slice(rot), ...steps.slice(0, rot)]) await step();
    }

    // Observed run per buffer size, through the counting proxy: export requests of the cold scan and the warm rescan.
    if (idleMs > 0) await waitForIdle(idleMs);
    const dir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-'));
    const proxy = await startDockerProxy({ listenPath: path.join(dir, 'docker.sock'), upstreamPath: socket });
    const observed = [];
    let refSave;
    try {
      const proxyEnv = { ...env, DOCKER_HOST: `unix://${proxy.path}` };
      await save(img, proxyEnv);
      refSave = proxy.saves();
      for (const buf of V1_BUFFERS) {
        proxy.reset();
        let coldSaves;
        const c = await coldAndWarm(img, buf, proxyEnv, () => {
          coldSaves = proxy.saves().map((r) => ({ ...r }));
          proxy.reset();
        });
        const warmSaves = proxy.saves();
        observed.push({ buf, coldSaves, warmSaves, warmRequests: proxy.requests.map((r) => `${r.method} ${r.path.replace(/\?.*/, '')}`), c });
      }
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const exp = (r) => (r.firstByteAt !== undefined
      ? `first byte ${secsF(r.firstByteAt - r.at)}, last ${secsF(r.lastByteAt - r.at)}, ${mbF(r.bytes)}` : 'no bytes');
    say(`    via proxy: docker save: ${refSave.map(exp).join('; ')}`);
    for (const o of observed) {
      const t0 = o.coldSaves[0]?.at ?? 0;
      say(`    via proxy, --v1-buffer ${o.buf.short}: cold scan ${secsF(o.c.cold.wallMs)}: ${o.coldSaves.length} export request(s)` +
        `${o.coldSaves.map((r, k) => `\n      pass ${k + 1}: starts ${secsF(r.at - t0)} after the first, ${exp(r)}`).join('')}` +
        `\n      ${debugF(o.c.coldDebug)}; warm rescan: ${o.warmSaves.length} export request(s); daemon requests: ${o.warmRequests.join(', ')}`);
    }
    results.push({ img, saves, scans, observed });
  }

  // Summary: one column per image × buffer size.
  const cols = [];
  for (const { img, saves, scans, observed } of results) {
    const saveMs = median(saves.map((s) => s.r.wallMs));
    V1_BUFFERS.forEach((buf, k) => {
      const sc = scans[k];
      const o = observed[k];
      const coldMs = median(sc.map((s) => s.cold.wallMs));
      const passes = sc.map((s) => s.coldDebug?.passes ?? NaN).concat(o.c.coldDebug?.passes ?? NaN);
      cols.push({
        img, buf, saveMs,
        saveRange: [Math.min(...saves.map((s) => s.r.wallMs)), Math.max(...saves.map((s) => s.r.wallMs))],
        coldMs,
        coldRange: [Math.min(...sc.map((s) => s.cold.wallMs)), Math.max(...sc.map((s) => s.cold.wallMs))],
        ratio: coldMs / saveMs,
        warmMs: median(sc.map((s) => s.warm.wallMs)),
        coldRss: Math.max(...sc.map((s) => s.cold.rssKb * 1024), o.c.cold.rssKb * 1024),
        warmRss: Math.max(...sc.map((s) => s.warm.rssKb * 1024), o.c.warm.rssKb * 1024),
        anon: Math.max(...sc.map((s) => s.cold.sampled?.anon ?? 0)),
        file: Math.max(...sc.map((s) => s.cold.sampled?.file ?? 0)),
        warmAnon: Math.max(...sc.map((s) => s.warm.sampled?.anon ?? 0)),
        peakBuffered: Math.max(...sc.map((s) => s.coldDebug?.peakBuffered ?? NaN), o.c.coldDebug?.peakBuffered ?? NaN),
        pluginPasses: [Math.min(...passes), Math.max(...passes)],
        savesCold: o.coldSaves.length,
        savesWarm: o.warmSaves.length,
        written: Math.max(...sc.flatMap((s) => [s.cold.io.write_bytes, s.warm.io.write_bytes]), o.c.cold.io.write_bytes, o.c.warm.io.write_bytes),
        scanClientCpu: median(sc.map((s) => s.cold.cpuS)),
        scanDockerdCpu: sc.every((s) => s.coldCpu.dockerd !== undefined) ? median(sc.map((s) => s.coldCpu.dockerd)) : undefined,
      });
    });
  }
  const w = 24;
  const rows = [];
  const row = (label, cells, goal = '') => rows.push(`  ${label.padEnd(36)}${cells.map((c) => String(c).padEnd(w)).join('')}${goal}`);
  const range = ([lo, hi]) => `${(lo / 1000).toFixed(2)}–${(hi / 1000).toFixed(2)}`;
  row('', cols.map((c) => `${c.img.name}, ${c.buf.short}`), 'goal (v4, issue #4) / note');
  row('docker save > /dev/null, median', cols.map((c) => `${secsF(c.saveMs)} (${range(c.saveRange)})`));
  row('cold v1 scan, median', cols.map((c) => `${secsF(c.coldMs)} (${range(c.coldRange)})`));
  row('cold scan ÷ save', cols.map((c) => `${c.ratio.toFixed(2)} ${verdictF(c.ratio <= SCAN_GOALS.ratio)}`), `<= ${SCAN_GOALS.ratio}`);
  row('warm rescan, median', cols.map((c) => secsF(c.warmMs)));
  row('docker save passes cold / warm', cols.map((c) => `${c.savesCold} / ${c.savesWarm} ${verdictF(c.savesCold === 1 && c.savesWarm === 0)}`), '1 / 0 (proxy, observed run)');
  row('  passes reported by the plugin', cols.map((c) => (c.pluginPasses[0] === c.pluginPasses[1] ? `${c.pluginPasses[0]}` : `${c.pluginPasses[0]}–${c.pluginPasses[1]}`)), '(every cold run, -D)');
  row('layer bytes buffered (max)', cols.map((c) => `${mbF(c.peakBuffered)} ${c.peakBuffered <= c.buf.cap ? '<=' : '>'} cap`), `(cap = --v1-buffer: ${V1_BUFFERS.map((b) => `${b.short} = ${mbF(b.cap)}`).join(', ')})`);
  row('peak RSS, cold scan (max)', cols.map((c) => `${mbF(c.coldRss)} ${verdictF(c.coldRss <= SCAN_GOALS.rssBytes)}`), `<= ${mbF(SCAN_GOALS.rssBytes)}`);
  const withinCap = (c) => c.coldRss - baseRss <= c.buf.cap;
  row('  peak RSS − baseline `version`', cols.map((c) => `${mbF(c.coldRss - baseRss)} ${verdictF(withinCap(c))}`), `<= cap (baseline ${mbF(baseRss)})`);
  row('  sampled RssAnon / RssFile (max)', cols.map((c) => `${mbF(c.anon)} / ${mbF(c.file)}`), '(every 100 ms)');
  row('peak RSS, warm rescan (max)', cols.map((c) => `${mbF(c.warmRss)}`));
  for (const buf of V1_BUFFERS) {
    const [a, b] = cols.filter((c) => c.buf === buf);
    const r = b.coldRss / a.coldRss;
    row(`peak RSS ${b.img.name} ÷ ${a.img.name}, ${buf.short}`, [`${r.toFixed(2)} ${verdictF(r <= SCAN_GOALS.rssRatio)}`], `<= ${SCAN_GOALS.rssRatio}`);
  }
  row('client write_bytes (max)', cols.map((c) => `${c.written} ${verdictF(c.written <= SCAN_GOALS.writeBytes)}`), `${SCAN_GOALS.writeBytes}`);
  row('CPU s, cold scan (median)', cols.map((c) => `plugin ${cpuF(c.scanClientCpu)}`));
  row('  dockerd', cols.map((c) => cpuF(c.scanDockerdCpu)));
  say(`  results (wall times: median of ${opts.runs}, range in brackets; RSS: max over the rounds and the observed run; MB = 10^6 bytes)`);
  if (idleMs > 0) say(`  ${idleCount.waits - idleCount.misses} of ${idleCount.waits} timed steps started on an idle machine (< 0.3 cores busy for 1 s, waited up to ${opts.idleWait} s)`);
  for (const r of rows) say(r);
  // The point of this benchmark: memory bounded by the cap (the whole peak RSS above the plugin's floor, not only
  // the buffered layer bytes), nothing written to disk, no export on a warm rescan.
  const pass = cols.every((c) => c.peakBuffered <= c.buf.cap && withinCap(c) && c.written <= SCAN_GOALS.writeBytes && c.savesWarm === 0);
  return { pass, lines: [] };
}

// ---------------------------------------------------------------------------------------------------------------
// scan against the real Clair v4.9 (scripts/real-clair.sh): the same images, rounds and wrapper as `scan`, with a
// fresh Clair + PostgreSQL instance per cold scan, loaded with made-up Debian 12 advisories so the matcher matches.

const REAL_CLAIR_SCRIPT = path.join(ROOT, 'scripts', 'real-clair.sh');
// The script's own default root: `scripts/test.sh` cleans up only the `test-*` instances under it, not these.
const REAL_CLAIR_ROOT = '/var/tmp/docker-clair-test/real-clair';
const REAL_CLAIR_PG_BIN = process.env.PG_BIN || '/usr/lib/postgresql/15/bin';

/** Why the real Clair cannot run here, or undefined. */
function realClairMissing() {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (scripts/real-clair.sh runs PostgreSQL as the postgres user)';
  if (!existsSync(path.join(REAL_CLAIR_PG_BIN, 'postgres'))) return `needs PostgreSQL 15 (${REAL_CLAIR_PG_BIN}/postgres; apt-get install postgresql-15)`;
  return undefined;
}

/**
 * Follows a JSON-lines log file as it grows and stamps each line with the time it was seen. Clair's log times
 * have whole-second precision, too coarse for sub-second phases; the file is written one line per write(2), so
 * an inotify wake-up (with a 50 ms poll as a fallback) dates each line within a few ms.
 */
class LogTail {
  constructor(file) {
    this.file = file;
    this.entries = [];
    this.offset = existsSync(file) ? statSync(file).size : 0;
    this.partial = '';
    this.watcher = watch(file, () => this.read());
    this.timer = setInterval(() => this.read(), 50);
  }

  read() {
    let fd;
    try {
      fd = openSync(this.file, 'r');
      const size = fstatSync(fd).size;
      if (size <= this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const at = performance.timeOrigin + performance.now();
      const lines = (this.partial + buf.subarray(0, n).toString('utf8')).split('\n');
      this.partial = lines.pop();
      for (const line of lines) {
        try {
          this.entries.push({ at, ...JSON.parse(line) });
        } catch {
          // not a JSON line (Clair's stderr before its logger is set up)
        }
      }
    } catch {
      // the file is gone (instance removed)
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  stop() {
    this.read();
    this.watcher.close();
    clearInterval(this.timer);
  }
}

/**
 * Starts a fresh real Clair (its own state directory, PostgreSQL cluster and port) and imports `vulnFile`;
 * not timed. Returns its URL, the pids whose CPU is counted, a tail of its log from after the import, and down().
 */
async function startRealClair(env, vulnFile) {
  mkdirSync(REAL_CLAIR_ROOT, { recursive: true });
  const dir = mkdtempSync(path.join(REAL_CLAIR_ROOT, 'bench-'));
  chmodSync(dir, 0o711); // PostgreSQL runs as the postgres user, which must reach its data directory
  const state = path.join(dir, 'instance');
  const script = async (args) => {
    const r = await runAsync('bash', [REAL_CLAIR_SCRIPT, ...args], { env: { ...env, REAL_CLAIR_STATE: state }, timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`real-clair.sh ${args.join(' ')}: exit ${r.code ?? r.signal}\n${r.stderr}`.trim());
    return r.stdout;
  };
  const down = async () => {
    await script(['down']).catch((error) => console.error(`  warning: ${error.message}`));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const out = await script(['up']);
    const url = /^CLAIR_ADDR=(http:\/\/127\.0\.0\.1:\d+)$/.exec(out.trim())?.[1];
    if (!url) throw new Error(`real-clair.sh up printed ${JSON.stringify(out)}, not one CLAIR_ADDR line`);
    await script(['import', vulnFile]);
    const pid = Number(readFileSync(path.join(state, 'clair.pid'), 'utf8').trim());
    // postmaster.pid's first line is the postmaster's pid.
    const pgPid = Number(readFileSync(path.join(state, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const tail = new LogTail(path.join(state, 'clair.log'));
    return {
      url,
      state,
      pid,
      pgPid,
      tail,
      async stop() {
        tail.stop();
        await down();
      },
    };
  } catch (error) {
    await down();
    throw error;
  }
}

/** Clair's request log lines (`handled HTTP request`) among `entries`, with start = seen − duration (ms). */
function clairRequests(entries) {
  return entries
    .filter((e) => e.message === 'handled HTTP request' && typeof e.duration === 'number')
    .map((e) => ({ id: e.request_id, method: e.method, uri: e.request_uri, status: e.status, start: e.at - e.duration, end: e.at, ms: e.duration }));
}

/**
 * Splits a cold scan against the real Clair with its log. Every part is sequential in the plugin (one index POST at
 * a time), so they add up to the wall time:
 *   before  spawn to the start of the first one-layer index POST: plugin start, inspect, index_report lookup, the
 *           preflight's probe POST and DELETE, the daemon staging the export, the stream up to the first layer
 *   fetch   Clair's `layers fetch start` to `done` in each layer POST: it GETs the layer from the plugin's layer
 *           server, which relays it from `docker save` as it streams (daemon + relay + Clair writing it to disk)
 *   index   `layers scan start` to `done`: Clair's scanners over the fetched layer (the export waits meanwhile)
 *   db      the rest of the layer POSTs: checking the manifest, writing the index records
 *   gaps    between the POSTs: the plugin reading the export to the next layer's tar header
 *   image   the image manifest's POST (no fetch: Clair has every layer; merges the layers' results)
 *   after   to exit: deleting the helpers, `match` (the vulnerability_report GET), update_operation, the report
 */
function realPhases(run, entries) {
  const reqs = clairRequests(entries);
  const events = reqs.filter((r) => r.uri === '/indexer/api/v1/index_report' && (r.method === 'POST' || r.method === 'DELETE'));
  // The preflight's probe manifest: a POST followed directly by a DELETE, before any layer's POST.
  if (events[0]?.method === 'POST' && events[1]?.method === 'DELETE') events.splice(0, 2);
  const posts = events.filter((e) => e.method === 'POST' && e.status === 201);
  if (posts.length < 2) return undefined;
  const layerPosts = posts.slice(0, -1);
  const image = posts[posts.length - 1];
  const seen = (id, message) => entries.find((e) => e.request_id === id && e.message === message)?.at;
  const span = (id, a, b) => {
    const [s, e] = [seen(id, a), seen(id, b)];
    return s === undefined || e === undefined ? NaN : e - s;
  };
  const perLayer = layerPosts.map((p) => ({
    ms: p.ms,
    fetch: span(p.id, 'layers fetch start', 'layers fetch done'),
    index: span(p.id, 'layers scan start', 'layers scan done'),
  }));
  const sum = (f) => perLayer.reduce((a, l) => a + f(l), 0);
  const match = reqs.find((r) => r.method === 'GET' && r.uri.startsWith('/matcher/api/v1/vulnerability_report/'));
  return {
    before: layerPosts[0].start - run.startedAt,
    fetch: sum((l) => l.fetch),
    index: sum((l) => l.index),
    db: sum((l) => l.ms - l.fetch - l.index),
    gaps: image.start - layerPosts[0].start - sum((l) => l.ms),
    image: image.ms,
    after: run.endedAt - image.end,
    match: match?.ms,
    perLayer,
    firstLayerStart: layerPosts[0].start,
    lastFetchDone: seen(layerPosts[layerPosts.length - 1].id, 'layers fetch done'),
  };
}

const REAL_PARTS = ['before', 'fetch', 'index', 'db', 'gaps', 'image', 'after'];
const realPhasesF = (p) => (p === undefined
  ? 'n/a'
  : `${REAL_PARTS.map((k) => `${k} ${secsF(p[k])}`).join(', ')} (match ${p.match === undefined ? 'n/a' : secsF(p.match)}); ` +
    `per layer fetch/index ${p.perLayer.map((l) => `${(l.fetch / 1000).toFixed(2)}/${(l.index / 1000).toFixed(2)}`).join(' ')} s`);

function scanRealBenchmark(opts) {
  return withPrivateBinary(opts, scanRealBenchmarkWith);
}

async function scanRealBenchmarkWith(opts, original, binary) {
  const socket = daemonSocket();
  const env = { ...benchEnv(), DOCKER_HOST: `unix://${socket}` };
  const say = (line) => console.log(line);
  say('  against the real Clair: a fresh Clair v4.9 + PostgreSQL per cold scan (scripts/real-clair.sh), made-up Debian 12 advisories imported');

  const { images, dockerdPid, baseRss, save, idleMs, idle, idleCount } = await scanBenchSetup(opts, original, binary, socket, env, say);
  const version = spawnSync('bash', [REAL_CLAIR_SCRIPT, 'version'], { env, encoding: 'utf8' });
  if (version.status !== 0) throw new Error(`real-clair.sh version: ${version.stderr}`.trim());
  const vulnDir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-vulns-'));
  const vulnFile = path.join(vulnDir, 'debian12.jsonl.gz');
  const gen = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/vuln-file.ts', 'docker-clair-test/debian12', vulnFile],
    { cwd: ROOT, env, encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`test/helpers/vuln-file.ts: ${gen.stderr}`.trim());
  say(`  Clair: ${version.stdout.trim()}; advisories: ${gen.stdout.trim()}`);

  const scanArgs = (url, img) => ['scan', '--clair', url, '-q', '--format', 'json', img.ref];
  /** A fresh instance (started and loaded before `ready`, not timed); a cold scan, then a warm rescan on it. */
  const coldAndWarm = async (img, { runEnv = env, ready = async () => '', between = () => {} } = {}) => {
    const clair = await startRealClair(env, vulnFile);
    try {
      const waited = await ready();
      const before = cpuSnapshot(dockerdPid, clair.pid, clair.pgPid);
      const mark = clair.tail.entries.length;
      const cold = await runMeasured(`cold scan of ${img.ref} (real Clair)`, binary, scanArgs(clair.url, img), { env: runEnv, sample: true });
      const coldCpu = cpuDelta(before, cpuSnapshot(dockerdPid, clair.pid, clair.pgPid));
      clair.tail.read();
      const coldLog = clair.tail.entries.slice(mark);
      const coldVerdict = checkScan(`cold scan of ${img.ref} (real Clair)`, cold, img);
      const coldPosts = clairRequests(coldLog).filter((r) => r.method === 'POST' && r.uri === '/indexer/api/v1/index_report' && r.status === 201).length;
      if (coldPosts < 2) throw new Error(`cold scan of ${img.ref}: Clair indexed ${coldPosts} manifest(s); was it cold?`);
      const coldPhases = realPhases(cold, coldLog);
      between();
      const mark2 = clair.tail.entries.length;
      const before2 = cpuSnapshot(dockerdPid, clair.pid, clair.pgPid);
      const warm = await runMeasured(`warm scan of ${img.ref} (real Clair)`, binary, scanArgs(clair.url, img), { env: runEnv, sample: true });
      const warmCpu = cpuDelta(before2, cpuSnapshot(dockerdPid, clair.pid, clair.pgPid));
      clair.tail.read();
      const warmReqs = clairRequests(clair.tail.entries.slice(mark2));
      const warmVerdict = checkScan(`warm scan of ${img.ref} (real Clair)`, warm, img);
      const warmPosts = warmReqs.filter((r) => r.method === 'POST' && r.uri === '/indexer/api/v1/index_report').length;
      const warmMatch = warmReqs.find((r) => r.method === 'GET' && r.uri.startsWith('/matcher/api/v1/vulnerability_report/'))?.ms;
      return { cold, coldCpu, coldVerdict, coldPosts, coldPhases, coldLog, warm, warmCpu, warmVerdict, warmPosts, warmMatch, waited };
    } finally {
      await clair.stop();
    }
  };

  const results = [];
  try {
    for (const img of images) {
      say(`  ${img.name}: ${opts.warmup} warm-up round(s) (save + cold scan, discarded), then ${opts.runs} rounds, save and cold scan interleaved`);
      for (let i = 0; i < opts.warmup; i++) {
        await save(img);
        await coldAndWarm(img);
      }
      const saves = [];
      const scans = [];
      for (let i = 0; i < opts.runs; i++) {
        const steps = [
          async () => {
            const waited = await idle();
            const s = await save(img);
            saves.push(s);
            say(runLine('save', s.r, s.cpu, waited));
          },
          async () => {
            // The instance starts before the idle wait, so its start-up is neither timed nor in the next step's CPU.
            const c = await coldAndWarm(img, { ready: idle });
            scans.push(c);
            say(runLine('cold', c.cold, c.coldCpu, `; ${c.coldVerdict}; Clair indexed ${c.coldPosts} manifests, wrote ` +
              `${c.coldCpu.doubleWrite === undefined ? 'n/a' : mbF(c.coldCpu.doubleWrite)}${c.waited}`, 'clair'));
            say(`          cold scan phases: ${realPhasesF(c.coldPhases)}`);
            say(runLine('warm', c.warm, c.warmCpu, `; ${c.warmVerdict}; Clair indexed ${c.warmPosts} manifests; match ` +
              `${c.warmMatch === undefined ? 'n/a' : secsF(c.warmMatch)}`, 'clair'));
          },
        ];
        if (i % 2) steps.reverse();
        for (const step of steps) await step();
      }

      // Observed run through the counting proxy (not timed with the rounds): export requests of the cold scan and
      // the warm rescan, and the export's first and last byte against Clair's fetches.
      const dir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-'));
      const proxy = await startDockerProxy({ listenPath: path.join(dir, 'docker.sock'), upstreamPath: socket });
      let observed;
      try {
        const proxyEnv = { ...env, DOCKER_HOST: `unix://${proxy.path}` };
        if (idleMs > 0) await waitForIdle(idleMs);
        await save(img, proxyEnv);
        const refSave = proxy.saves();
        let coldSaves;
        const c = await coldAndWarm(img, {
          runEnv: proxyEnv,
          ready: async () => {
            if (idleMs > 0) await waitForIdle(idleMs);
            proxy.reset();
            return '';
          },
          between: () => {
            coldSaves = proxy.saves().map((r) => ({ ...r }));
            proxy.reset();
          },
        });
        observed = { refSave, coldSaves, warmSaves: proxy.saves(), c };
      } finally {
        await proxy.close();
        rmSync(dir, { recursive: true, force: true });
      }
      const epoch = (t) => performance.timeOrigin + t;
      const exp = (reqs) => (reqs.length === 1 && reqs[0].firstByteAt !== undefined
        ? `first byte after ${secsF(reqs[0].firstByteAt - reqs[0].at)}, last after ${secsF(reqs[0].lastByteAt - reqs[0].at)}, ${mbF(reqs[0].bytes)}`
        : `${reqs.length} export requests`);
      say(`    via proxy: docker save: ${exp(observed.refSave)}`);
      const oc = observed.c;
      say(`    via proxy: cold scan ${secsF(oc.cold.wallMs)}: ${observed.coldSaves.length} export request(s); ${exp(observed.coldSaves)}`);
      const ex = observed.coldSaves.length === 1 ? observed.coldSaves[0] : undefined;
      if (ex && oc.coldPhases && ex.firstByteAt !== undefined) {
        const p = oc.coldPhases;
        const t0 = oc.cold.startedAt;
        say(`      timeline from spawn: export requested ${secsF(epoch(ex.at) - t0)}, first byte ${secsF(epoch(ex.firstByteAt) - t0)}, ` +
          `first layer POST ${secsF(p.firstLayerStart - t0)}, export last byte ${secsF(epoch(ex.lastByteAt) - t0)}, ` +
          `last layer fetched ${secsF(p.lastFetchDone - t0)}, exit ${secsF(oc.cold.endedAt - t0)}`);
      }
      say(`      phases: ${realPhasesF(oc.coldPhases)}`);
      say(`    via proxy: warm scan: ${observed.warmSaves.length} export request(s)`);
      results.push({ img, saves, scans, observed });
    }
  } finally {
    rmSync(vulnDir, { recursive: true, force: true });
  }

  const per = results.map(({ img, saves, scans, observed }) => {
    const saveMs = median(saves.map((s) => s.r.wallMs));
    const coldMs = median(scans.map((s) => s.cold.wallMs));
    const ph = scans.every((s) => s.coldPhases) ? Object.fromEntries(REAL_PARTS.concat('match').map((k) => [k, median(scans.map((s) => s.coldPhases[k] ?? NaN))])) : undefined;
    const ex = observed.refSave.length === 1 ? observed.refSave[0] : undefined;
    return {
      img,
      saveMs,
      saveRange: [Math.min(...saves.map((s) => s.r.wallMs)), Math.max(...saves.map((s) => s.r.wallMs))],
      coldMs,
      coldRange: [Math.min(...scans.map((s) => s.cold.wallMs)), Math.max(...scans.map((s) => s.cold.wallMs))],
      warmMs: median(scans.map((s) => s.warm.wallMs)),
      warmMatch: median(scans.map((s) => s.warmMatch ?? NaN)),
      ratio: coldMs / saveMs,
      ph,
      refSave: ex,
      coldRss: Math.max(...scans.map((s) => s.cold.rssKb * 1024)),
      warmRss: Math.max(...scans.map((s) => s.warm.rssKb * 1024)),
      savesCold: observed.coldSaves.length,
      savesWarm: observed.warmSaves.length,
      written: Math.max(...scans.flatMap((s) => [s.cold.io.write_bytes, s.warm.io.write_bytes]),
        observed.c.cold.io.write_bytes, observed.c.warm.io.write_bytes),
      verdict: scans[0].coldVerdict,
      cpu: {
        saveDockerd: saves.every((s) => s.cpu.dockerd !== undefined) ? median(saves.map((s) => s.cpu.dockerd)) : undefined,
        saveBusy: median(saves.map((s) => s.cpu.machineBusy)),
        client: median(scans.map((s) => s.cold.cpuS)),
        dockerd: scans.every((s) => s.coldCpu.dockerd !== undefined) ? median(scans.map((s) => s.coldCpu.dockerd)) : undefined,
        clair: median(scans.map((s) => s.coldCpu.double ?? NaN)),
        pg: median(scans.map((s) => s.coldCpu.pg ?? NaN)),
        busy: median(scans.map((s) => s.coldCpu.machineBusy)),
        other: median(scans.map((s) => s.coldCpu.machineBusy - s.cold.cpuS - (s.coldCpu.dockerd ?? 0) - (s.coldCpu.double ?? 0) - (s.coldCpu.pg ?? 0))),
        clairWrote: median(scans.map((s) => s.coldCpu.doubleWrite ?? NaN)),
        warmClair: median(scans.map((s) => s.warmCpu.double ?? NaN)),
        warmPg: median(scans.map((s) => s.warmCpu.pg ?? NaN)),
      },
    };
  });
  const [small, big] = per;
  const rssRatio = big.coldRss / small.coldRss;
  const rows = [];
  const col = (s, w = 32) => String(s).padEnd(w);
  const row = (label, a, b, goal = '') => rows.push(`  ${col(label, 38)}${col(a)}${col(b)}${goal}`);
  const range = ([lo, hi]) => `${(lo / 1000).toFixed(2)}–${(hi / 1000).toFixed(2)}`;
  const s2 = (ms) => (ms === undefined || Number.isNaN(ms) ? 'n/a' : (ms / 1000).toFixed(2));
  row('real Clair v4.9', small.img.name, big.img.name, 'goal');
  row('docker save > /dev/null, median', `${secsF(small.saveMs)} (${range(small.saveRange)})`, `${secsF(big.saveMs)} (${range(big.saveRange)})`);
  row('  save first / last byte (proxy)', ...[small, big].map((p) => (p.refSave?.firstByteAt !== undefined
    ? `${s2(p.refSave.firstByteAt - p.refSave.at)} / ${s2(p.refSave.lastByteAt - p.refSave.at)} s` : 'n/a')), '(one observed save)');
  row('cold scan, median', `${secsF(small.coldMs)} (${range(small.coldRange)})`, `${secsF(big.coldMs)} (${range(big.coldRange)})`);
  row('cold scan ÷ save', `${small.ratio.toFixed(2)} ${verdictF(small.ratio <= SCAN_GOALS.ratio)}`,
    `${big.ratio.toFixed(2)} ${verdictF(big.ratio <= SCAN_GOALS.ratio)}`, `<= ${SCAN_GOALS.ratio}`);
  const phaseCell = (p, keys) => (p.ph ? `${keys.map((k) => s2(p.ph[k])).join(' / ')} s` : 'n/a');
  row('  before / fetch / index / db', phaseCell(small, ['before', 'fetch', 'index', 'db']), phaseCell(big, ['before', 'fetch', 'index', 'db']), '(medians, Clair\'s log; see docs/benchmarks.md)');
  row('  gaps / image / after (match)', `${phaseCell(small, ['gaps', 'image', 'after'])} (${s2(small.ph?.match)})`,
    `${phaseCell(big, ['gaps', 'image', 'after'])} (${s2(big.ph?.match)})`);
  row('warm rescan, median (match)', `${secsF(small.warmMs)} (${s2(small.warmMatch)})`, `${secsF(big.warmMs)} (${s2(big.warmMatch)})`);
  row('report', small.verdict, big.verdict);
  row('peak RSS, cold scan (max)', `${mbF(small.coldRss)} ${verdictF(small.coldRss <= SCAN_GOALS.rssBytes)}`,
    `${mbF(big.coldRss)} ${verdictF(big.coldRss <= SCAN_GOALS.rssBytes)}`, `<= ${mbF(SCAN_GOALS.rssBytes)}`);
  row('peak RSS, warm rescan (max)', mbF(small.warmRss), mbF(big.warmRss), `(baseline \`version\`: ${mbF(baseRss)})`);
  row(`peak RSS ${big.img.name} ÷ ${small.img.name}`, '', `${rssRatio.toFixed(2)} ${verdictF(rssRatio <= SCAN_GOALS.rssRatio)}`, `<= ${SCAN_GOALS.rssRatio}`);
  const savesOk = (p) => p.savesCold === SCAN_GOALS.savesCold && p.savesWarm === SCAN_GOALS.savesWarm;
  row('docker save calls cold / warm', `${small.savesCold} / ${small.savesWarm} ${verdictF(savesOk(small))}`,
    `${big.savesCold} / ${big.savesWarm} ${verdictF(savesOk(big))}`, `${SCAN_GOALS.savesCold} / ${SCAN_GOALS.savesWarm}`);
  row('client write_bytes (max)', `${small.written} ${verdictF(small.written <= SCAN_GOALS.writeBytes)}`,
    `${big.written} ${verdictF(big.written <= SCAN_GOALS.writeBytes)}`, `${SCAN_GOALS.writeBytes}`);
  row('CPU s during save (median)', `dockerd ${cpuF(small.cpu.saveDockerd)}, busy ${cpuF(small.cpu.saveBusy)}`,
    `dockerd ${cpuF(big.cpu.saveDockerd)}, busy ${cpuF(big.cpu.saveBusy)}`);
  row('CPU s during cold scan (median)', `plugin ${cpuF(small.cpu.client)}, dockerd ${cpuF(small.cpu.dockerd)}`,
    `plugin ${cpuF(big.cpu.client)}, dockerd ${cpuF(big.cpu.dockerd)}`);
  row('  clair / postgres', `${cpuF(small.cpu.clair)} / ${cpuF(small.cpu.pg)}`, `${cpuF(big.cpu.clair)} / ${cpuF(big.cpu.pg)}`);
  row('  machine busy / other', `${cpuF(small.cpu.busy)} / ${cpuF(small.cpu.other)}`, `${cpuF(big.cpu.busy)} / ${cpuF(big.cpu.other)}`);
  row('Clair write_bytes, cold scan (median)', mbF(small.cpu.clairWrote), mbF(big.cpu.clairWrote), '(its fetched layers, in its TMPDIR)');
  row('CPU s, warm rescan: clair / postgres', `${cpuF(small.cpu.warmClair)} / ${cpuF(small.cpu.warmPg)}`, `${cpuF(big.cpu.warmClair)} / ${cpuF(big.cpu.warmPg)}`);
  say(`  results against the real Clair (wall times: median of ${opts.runs}, range in brackets; RSS: max over the rounds; MB = 10^6 bytes)`);
  if (idleMs > 0) say(`  ${idleCount.waits - idleCount.misses} of ${idleCount.waits} timed steps started on an idle machine (< 0.3 cores busy for 1 s, waited up to ${opts.idleWait} s)`);
  else say('  timed steps started without waiting for an idle machine (--idle-wait 0)');
  for (const r of rows) say(r);
  const pass = per.every((p) => p.coldRss <= SCAN_GOALS.rssBytes && savesOk(p) && p.written <= SCAN_GOALS.writeBytes && p.ratio <= SCAN_GOALS.ratio) &&
    rssRatio <= SCAN_GOALS.rssRatio;
  return { pass, lines: [] };
}

/**
 * The registry of benchmarks. Each entry: description, and run(opts) -> { lines, pass? }.
 * `available()` may return a reason string when the benchmark cannot run here (it is then skipped
 * by a bare `npm run bench`, and an error when named explicitly).
 */
const BENCHMARKS = {
  metadata: {
    description: '`docker-clair docker-cli-plugin-metadata` (run before every docker clair call) vs `node -e 0`',
    defaults: { runs: 30, warmup: 3 },
    goalRatio: 1.3,
    async run(opts) {
      const { config, binary, node } = await hostBinaryAndNode(opts.binary);
      const env = benchEnv();
      const [sea, ref] = measure(
        [
          {
            label: `${rel(binary)} docker-cli-plugin-metadata`,
            cmd: binary,
            args: ['docker-cli-plugin-metadata'],
            env,
            check: (r) => {
              if (JSON.parse(r.stdout).SchemaVersion !== '0.1.0') throw new Error('metadata: unexpected output');
            },
          },
          { label: `node ${config.node} -e 0 (${rel(node)})`, cmd: node, args: ['-e', '0'], env },
        ],
        opts,
      );
      const ratio = sea.median / ref.median;
      const pass = ratio <= this.goalRatio;
      return {
        pass,
        lines: [
          `  ${sea.label}`,
          `    ${fmt(sea)}`,
          `  ${ref.label}`,
          `    ${fmt(ref)}`,
          `  ratio of medians ${ratio.toFixed(2)}  (goal <= ${this.goalRatio})  ${pass ? 'PASS' : 'MISS'}`,
        ],
      };
    },
  },
  scan: {
    description: 'cold/warm `docker-clair scan` vs `docker save > /dev/null` on ~200 MB and ~816 MB images, against the Clair ' +
      'double, then against the real Clair v4.9 (scan-double and scan-real run one part)',
    defaults: { runs: 5, warmup: 1 },
    async run(opts) {
      const double = await scanBenchmark(opts);
      const missing = realClairMissing();
      if (missing) {
        console.log(`  against the real Clair: skipped (${missing}); the double's result only`);
        return double;
      }
      const real = await scanRealBenchmark(opts);
      console.log(`  double ${verdictF(double.pass)}, real Clair ${verdictF(real.pass)}`);
      return { pass: double.pass && real.pass, lines: [] };
    },
    available() {
      if (process.platform !== 'linux') return 'needs Linux (/proc)';
      if (!existsSync(TIME_BIN)) return `needs ${TIME_BIN} (Debian package "time")`;
      let socket;
      try {
        socket = daemonSocket();
      } catch (error) {
        return error.message;
      }
      const r = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { env: { ...process.env, DOCKER_HOST: `unix://${socket}` }, encoding: 'utf8' });
      if (r.status !== 0) return `cannot reach the Docker daemon at unix://${socket}`;
      return undefined;
    },
  },
  'scan-double': {
    description: 'the Clair-double part of `scan` only',
    defaults: { runs: 5, warmup: 1 },
    explicitOnly: true,
    available() {
      return BENCHMARKS.scan.available();
    },
    run: scanBenchmark,
  },
  'scan-real': {
    description: 'the real-Clair part of `scan` only: a fresh Clair v4.9 + PostgreSQL per cold scan (scripts/real-clair.sh)',
    defaults: { runs: 5, warmup: 1 },
    explicitOnly: true,
    available() {
      return BENCHMARKS.scan.available() ?? realClairMissing();
    },
    run: scanRealBenchmark,
  },
  'scan-v1': {
    description: 'cold/warm `docker-clair scan --clair-api v1` (--v1-buffer 256MiB and 64MiB) vs `docker save > /dev/null`, Clair double --api v1',
    defaults: { runs: 3, warmup: 1 },
    available() {
      return BENCHMARKS.scan.available();
    },
    run: scanV1Benchmark,
  },
};

function parseArgs(argv) {
  const opts = { names: [], runs: undefined, warmup: undefined, list: false, binary: undefined, idleWait: 60 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${a} needs a non-negative integer, got ${v}`);
      return n;
    };
    if (a === '--runs') opts.runs = num(argv[++i]);
    else if (a === '--warmup') opts.warmup = num(argv[++i]);
    else if (a === '--list') opts.list = true;
    else if (a === '--idle-wait') opts.idleWait = num(argv[++i]);
    else if (a === '--binary') {
      opts.binary = argv[++i];
      if (!opts.binary) throw new Error('--binary needs a path');
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a} (use --runs N, --warmup N, --binary PATH, --idle-wait SECONDS, --list)`);
    else opts.names.push(a);
  }
  if (opts.runs !== undefined && opts.runs < 1) throw new Error('--runs must be at least 1');
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    for (const [name, b] of Object.entries(BENCHMARKS)) console.log(`${name.padEnd(12)} ${b.description}`);
    return;
  }
  for (const name of opts.names) {
    if (!BENCHMARKS[name]) throw new Error(`unknown benchmark "${name}"; available: ${Object.keys(BENCHMARKS).join(', ')}`);
  }
  const explicit = opts.names.length > 0;
  // Parts of another benchmark run only when named.
  const names = explicit ? opts.names : Object.keys(BENCHMARKS).filter((n) => !BENCHMARKS[n].explicitOnly);
  const summary = [];
  for (const name of names) {
    const b = BENCHMARKS[name];
    const missing = b.available ? await b.available() : undefined;
    if (typeof missing === 'string') {
      if (explicit) throw new Error(`${name}: ${missing}`);
      console.log(`${name}: skipped (${missing})`);
      continue;
    }
    const runs = opts.runs ?? b.defaults.runs;
    const warmup = opts.warmup ?? b.defaults.warmup;
    console.log(`${name}: ${b.description}; ${runs} runs each after ${warmup} warm-ups, interleaved`);
    const result = await b.run({ runs, warmup, binary: opts.binary, idleWait: opts.idleWait });
    for (const line of result.lines) console.log(line);
    if (result.pass !== undefined) summary.push(`${name} ${result.pass ? 'PASS' : 'MISS'}`);
  }
  if (summary.length > 0) console.log(`summary: ${summary.join(', ')}`);
}

main().catch((error) => {
  console.error(`bench: ${error.message ?? error}`);
  process.exitCode = 1;
});
