// What the scan benchmarks (scan, scan-real, scan-v1) share: the bench images and goals, the setup (images,
// binary, dockerd, the plugin's memory floor, a timed `docker save`, the idle wait), the Clair double, checking a
// scan's report, the rounds of interleaved steps, the counting proxy, and the lines of the summary.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDockerProxy } from '../bench-docker-proxy.mjs';
import { ROOT } from '../bundle.mjs';
import { TIME_BIN, benchEnv, daemonSocket, mbF, median, rel, runLine, runMeasured, secsF, spawnListening, verdictF } from './common.mjs';
import { cpuDelta, cpuSnapshot, findDockerd, waitForIdle } from './proc.mjs';

const SCAN_IMAGES = [
  { name: '200m', ref: 'docker-clair-bench/200m:latest' },
  { name: '800m', ref: 'docker-clair-bench/800m:latest' },
];
export const SCAN_GOALS = { ratio: 1.05, rssBytes: 80e6, rssRatio: 1.2, savesCold: 1, savesWarm: 0, writeBytes: 0 };

/** Why the scan benchmarks cannot run here, or undefined. */
export function scanUnavailable() {
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
}

/**
 * Starts a fresh Clair double (`node --import tsx test/double/main.ts`, one process, so its CPU time can be read
 * from /proc) on a free loopback port; resolves once it says it is listening, so its startup is not timed.
 */
export async function startDouble(env, extraArgs = []) {
  const args = ['--import', 'tsx', 'test/double/main.ts', '--listen', '127.0.0.1:0', ...extraArgs];
  const server = await spawnListening('Clair double', process.execPath, args,
    { env, stdio: ['ignore', 'ignore', 'pipe'], from: 'stderr', listening: /listening on (http:\/\/\S+)/ });
  const { log } = server;
  return {
    url: server.address,
    pid: server.pid,
    log,
    /** Index POSTs the double answered with 201 (one per one-layer manifest plus the image's). */
    indexPosts: () => log.filter((l) => /POST \/indexer\/api\/v1\/index_report 201/.test(l)).length,
    /** v1 layer POSTs the double answered with 201 (one per layer Clair v1 indexed). */
    v1LayerPosts: () => log.filter((l) => /POST \/v1\/layers 201/.test(l)).length,
    stop: server.stop,
  };
}

/** Checks a scan's exit code and JSON report; returns the verdict. Exit 1 (findings) is a finished scan. */
export function checkScan(label, r, image) {
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

/** An image's ID, size, layer count and diff IDs, in one `docker image inspect`. */
export function inspectImage(ref, env) {
  const r = spawnSync('docker', ['image', 'inspect', '-f', '{{.Id}} {{.Size}} {{json .RootFS.Layers}}', ref], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker image inspect ${ref}: ${(r.stderr || '').trim()}`);
  const [id, size, layers] = r.stdout.trim().split(' ');
  const diffIds = JSON.parse(layers ?? '[]');
  return { id, size: Number(size), layers: diffIds.length, diffIds };
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
    // `refs`: several images in one save.
    const refs = img.refs ?? [img.ref];
    const r = await runMeasured(`docker save ${refs.join(' ')}`, 'docker', ['save', ...refs], { env: runEnv, devNull: true });
    const cpu = cpuDelta(before, cpuSnapshot(dockerdPid));
    if (r.exit !== 0) throw new Error(`docker save ${refs.join(' ')}: exit ${r.exit}\n${r.stderr}`.trim());
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

/**
 * The context of one scan benchmark: the daemon socket, the measured processes' environment, and what
 * scanBenchSetup prepared. `intro` is said before the setup.
 */
export async function scanContext(opts, original, binary, intro) {
  const socket = daemonSocket();
  const env = { ...benchEnv(), DOCKER_HOST: `unix://${socket}` };
  const say = (line) => console.log(line);
  if (intro) say(intro);
  const setup = await scanBenchSetup(opts, original, binary, socket, env, say);
  return { opts, binary, socket, env, say, ...setup };
}

/**
 * `opts.warmup` discarded rounds (a save, then `warmupScan`), then `opts.runs` timed rounds of `steps()`, their
 * order rotating round by round so that noise from the machine hits every step alike.
 */
export async function runRounds(ctx, img, warmupScan, steps) {
  for (let i = 0; i < ctx.opts.warmup; i++) {
    await ctx.save(img);
    await warmupScan();
  }
  for (let i = 0; i < ctx.opts.runs; i++) {
    const round = steps();
    const rot = i % round.length;
    for (const step of [...round.slice(rot), ...round.slice(0, rot)]) await step();
  }
}

/** A round's timed `docker save` step: the idle wait, the save (kept in `saves`), its line. */
export function saveStep(ctx, img, saves) {
  return async () => {
    const waited = await ctx.idle();
    const s = await ctx.save(img);
    saves.push(s);
    ctx.say(runLine('save', s.r, s.cpu, waited));
  };
}

/**
 * Runs `observe(proxy, proxyEnv)` with DOCKER_HOST pointing at a counting proxy in front of the daemon socket (not
 * timed with the rounds: the proxy copies every byte once more).
 */
export async function withDockerProxy(ctx, observe) {
  const dir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-'));
  const proxy = await startDockerProxy({ listenPath: path.join(dir, 'docker.sock'), upstreamPath: ctx.socket });
  try {
    return await observe(proxy, { ...ctx.env, DOCKER_HOST: `unix://${proxy.path}` });
  } finally {
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One export request's first and last byte as the proxy saw them, or how many there were. */
export const exportF = (reqs) => (reqs.length === 1 && reqs[0].firstByteAt !== undefined
  ? `first byte after ${secsF(reqs[0].firstByteAt - reqs[0].at)}, last after ${secsF(reqs[0].lastByteAt - reqs[0].at)}, ${mbF(reqs[0].bytes)}`
  : `${reqs.length} export requests`);

export const rangeF = ([lo, hi]) => `${(lo / 1000).toFixed(2)}–${(hi / 1000).toFixed(2)}`;

/** The [min, max] of `xs`. */
export const minMax = (xs) => [Math.min(...xs), Math.max(...xs)];

/**
 * What every scan part reports for one image: save and cold-scan medians with their ranges, the warm rescan, the
 * ratio, peak RSS, bytes the client wrote, and the observed run's exports.
 */
export function roundsSummary({ img, saves, scans, observed }) {
  return {
    img,
    ...pairedWalls(saves, scans.map((s) => s.cold)),
    warmMs: median(scans.map((s) => s.warm.wallMs)),
    coldRss: Math.max(...scans.map((s) => s.cold.rssKb * 1024)),
    warmRss: Math.max(...scans.map((s) => s.warm.rssKb * 1024)),
    written: Math.max(...scans.flatMap((s) => [s.cold.io.write_bytes, s.warm.io.write_bytes]),
      observed.c.cold.io.write_bytes, observed.c.warm.io.write_bytes),
    refSave: observed.refSave.length === 1 ? observed.refSave[0] : undefined,
    savesCold: observed.coldSaves.length,
    savesWarm: observed.warmSaves.length,
  };
}

/** The saves' and the cold scans' wall times (medians and ranges) and the ratio of the medians. */
export function pairedWalls(saves, colds) {
  const saveMs = median(saves.map((s) => s.r.wallMs));
  const coldMs = median(colds.map((r) => r.wallMs));
  return {
    saveMs,
    saveRange: minMax(saves.map((s) => s.r.wallMs)),
    coldMs,
    coldRange: minMax(colds.map((r) => r.wallMs)),
    ratio: coldMs / saveMs,
  };
}

/** How many timed steps started on an idle machine (only with an idle wait). */
export function idleLine(ctx) {
  return `  ${ctx.idleCount.waits - ctx.idleCount.misses} of ${ctx.idleCount.waits} timed steps started on an idle machine (< 0.3 cores busy for 1 s, waited up to ${ctx.opts.idleWait} s)`;
}

/** The idle line, or that there was no idle wait. */
export function idleOrNotLine(ctx) {
  return ctx.idleMs > 0 ? idleLine(ctx) : '  timed steps started without waiting for an idle machine (--idle-wait 0)';
}

/** Two-column summary rows (one per image) with a goal column. */
export function twoColumnRows() {
  const rows = [];
  const col = (s, w = 32) => String(s).padEnd(w);
  const row = (label, a, b, goal = '') => rows.push(`  ${col(label, 38)}${col(a)}${col(b)}${goal}`);
  return { rows, row };
}

const savesOk = (p) => p.savesCold === SCAN_GOALS.savesCold && p.savesWarm === SCAN_GOALS.savesWarm;

/** The goal rows every scan part prints alike: memory growth with image size, exports, bytes the client wrote. */
export function sharedGoalRows(row, small, big) {
  const rssRatio = big.coldRss / small.coldRss;
  row(`peak RSS ${big.img.name} ÷ ${small.img.name}`, '', `${rssRatio.toFixed(2)} ${verdictF(rssRatio <= SCAN_GOALS.rssRatio)}`, `<= ${SCAN_GOALS.rssRatio}`);
  row('docker save calls cold / warm', `${small.savesCold} / ${small.savesWarm} ${verdictF(savesOk(small))}`,
    `${big.savesCold} / ${big.savesWarm} ${verdictF(savesOk(big))}`, `${SCAN_GOALS.savesCold} / ${SCAN_GOALS.savesWarm}`);
  row('client write_bytes (max)', `${small.written} ${verdictF(small.written <= SCAN_GOALS.writeBytes)}`,
    `${big.written} ${verdictF(big.written <= SCAN_GOALS.writeBytes)}`, `${SCAN_GOALS.writeBytes}`);
}

/** Every scan goal met by both images: speed, peak RSS and its growth, exports, bytes written. */
export function scanGoalsMet(small, big) {
  return [small, big].every((p) => p.coldRss <= SCAN_GOALS.rssBytes && savesOk(p) && p.written <= SCAN_GOALS.writeBytes && p.ratio <= SCAN_GOALS.ratio) &&
    big.coldRss / small.coldRss <= SCAN_GOALS.rssRatio;
}
