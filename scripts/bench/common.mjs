// What every benchmark uses: the measured processes' environment, the packaged binary, running a command once
// (timed, or under /usr/bin/time with its I/O and RSS), interleaved measurements, and the number formats.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, binaryPath, loadConfig } from '../bundle.mjs';
import { MemorySampler } from './proc.mjs';

export const rel = (p) => {
  const r = path.relative(ROOT, p);
  return r.startsWith('..') ? p : r.split(path.sep).join('/');
};

/** Environment for the measured processes: the caller's NODE_OPTIONS would only slow the reference. */
export function benchEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/**
 * Spawns a server and resolves once a line it writes to `from` matches `listening` (whose first group is its address),
 * so its start is not timed. One that fails to spawn, exits first or stays silent for 60 s is killed and the error
 * thrown, with what it wrote. Every line it writes to `from` stays in `log`; `stop` ends it (SIGKILL after 10 s).
 */
export async function spawnListening(label, command, args, { env, stdio, from, listening }) {
  const child = spawn(command, args, { cwd: ROOT, env, stdio });
  const log = [];
  let partial = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: not listening after 60 s\n${log.join('\n')}`)), 60_000);
    child[from].on('data', (chunk) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        log.push(line);
        const m = listening.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    });
    child.once('error', (e) => reject(new Error(`${label}: ${e.message}`)));
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${how}) before listening\n${log.join('\n')}`));
    });
  }).catch(async (error) => {
    child.kill('SIGKILL');
    await exited;
    throw error;
  });
  return {
    address,
    pid: child.pid,
    log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
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
export function measure(commands, { runs, warmup }) {
  for (let i = 0; i < warmup; i++) for (const c of commands) timeOnce(c);
  const samples = commands.map(() => []);
  for (let i = 0; i < runs; i++) {
    const order = commands.map((_, k) => k);
    if (i % 2) order.reverse();
    for (const k of order) samples[k].push(timeOnce(commands[k]));
  }
  return commands.map((c, k) => ({ label: c.label, ...stats(samples[k]) }));
}

export const fmt = (s) =>
  `median ${s.median.toFixed(1)} ms  (mean ${s.mean.toFixed(1)}, min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, n=${s.n})`;

export async function hostBinaryAndNode(override) {
  const config = await loadConfig();
  const binary = override ? path.resolve(override) : binaryPath(config, config.hostTarget);
  if (!existsSync(binary)) throw new Error(`${rel(binary)} is missing: run \`npm run package\` first`);
  const node = path.join(config.cacheDir, `node-${config.hostTarget}-${config.node}`, 'bin', 'node');
  if (!existsSync(node)) throw new Error(`${rel(node)} is missing: run \`npm run package\` first (it fetches the runtime)`);
  return { config, binary, node };
}

export const TIME_BIN = '/usr/bin/time';
const TIME_FMT = 'BENCH-TIME exit=%x rss_kb=%M wall_s=%e user_s=%U sys_s=%S';
const RUN_TIMEOUT_MS = 15 * 60_000;

/** The daemon's unix socket path: DOCKER_HOST if it is unix://, else the default socket. */
export function daemonSocket() {
  const host = process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
  if (!host.startsWith('unix://')) throw new Error(`scan needs a unix-socket daemon (DOCKER_HOST=${host})`);
  return host.slice('unix://'.length);
}

/** Spawns a command, collecting its output; resolves with exit code, output and wall time (ms). */
export function runAsync(cmd, args, { env, cwd = ROOT, timeoutMs = RUN_TIMEOUT_MS, onSpawn } = {}) {
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
export async function runMeasured(label, cmd, args, { env, devNull = false, sample = false }) {
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

export const median = (xs) => stats(xs).median;
export const secsF = (ms) => `${(ms / 1000).toFixed(2)} s`;
export const mbF = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
export const cpuF = (s) => (s === undefined ? 'n/a' : `${s.toFixed(2)}`);
export const verdictF = (ok) => (ok ? 'PASS' : 'MISS');

/** One line per run: wall, RSS, CPU of each process, machine load, bytes written. */
export function runLine(kind, r, cpu, extra = '', server = 'double') {
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
export async function withPrivateBinary(opts, benchmark) {
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
