// scan against the real Clair v4.9 (scripts/real-clair.sh; the second part of `scan`, `scan-real` alone): the same
// images, rounds and wrapper as `scan`, with a fresh Clair + PostgreSQL instance per cold scan, loaded with made-up
// Debian 12 advisories so the matcher matches.
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../bundle.mjs';
import { SCAN_GOALS, checkScan, exportF, idleOrNotLine, rangeF, roundsSummary, runRounds, scanGoalsMet, sharedGoalRows, saveStep, scanContext, twoColumnRows, withDockerProxy } from './scan-common.mjs';
import { cpuF, mbF, median, runAsync, runLine, runMeasured, secsF, verdictF, withPrivateBinary } from './common.mjs';
import { cpuDelta, cpuSnapshot, waitForIdle } from './proc.mjs';

const REAL_CLAIR_SCRIPT = path.join(ROOT, 'scripts', 'real-clair.sh');
// The script's own default root: `scripts/test.sh` cleans up only the `test-*` instances under it, not these.
const REAL_CLAIR_ROOT = '/var/tmp/docker-clair-test/real-clair';
const REAL_CLAIR_PG_BIN = process.env.PG_BIN || '/usr/lib/postgresql/15/bin';

/** Why the real Clair cannot run here, or undefined. */
export function realClairMissing() {
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

export function scanRealBenchmark(opts) {
  return withPrivateBinary(opts, scanRealBenchmarkWith);
}

async function scanRealBenchmarkWith(opts, original, binary) {
  const ctx = await scanContext(opts, original, binary,
    '  against the real Clair: a fresh Clair v4.9 + PostgreSQL per cold scan (scripts/real-clair.sh), made-up Debian 12 advisories imported');
  const vulnDir = mkdtempSync(path.join(tmpdir(), 'docker-clair-bench-vulns-'));
  const results = [];
  try {
    const vulnFile = prepareAdvisories(ctx, vulnDir);
    const coldAndWarm = coldAndWarmRealScans(ctx, vulnFile);
    for (const img of ctx.images) {
      ctx.say(`  ${img.name}: ${opts.warmup} warm-up round(s) (save + cold scan, discarded), then ${opts.runs} rounds, save and cold scan interleaved`);
      const saves = [];
      const scans = [];
      await runRounds(ctx, img, () => coldAndWarm(img), () => [saveStep(ctx, img, saves), async () => {
        // The instance starts before the idle wait, so its start-up is neither timed nor in the next step's CPU.
        const c = await coldAndWarm(img, { ready: ctx.idle });
        scans.push(c);
        ctx.say(runLine('cold', c.cold, c.coldCpu, `; ${c.coldVerdict}; Clair indexed ${c.coldPosts} manifests, wrote ` +
          `${c.coldCpu.doubleWrite === undefined ? 'n/a' : mbF(c.coldCpu.doubleWrite)}${c.waited}`, 'clair'));
        ctx.say(`          cold scan phases: ${realPhasesF(c.coldPhases)}`);
        ctx.say(runLine('warm', c.warm, c.warmCpu, `; ${c.warmVerdict}; Clair indexed ${c.warmPosts} manifests; match ` +
          `${c.warmMatch === undefined ? 'n/a' : secsF(c.warmMatch)}`, 'clair'));
      }]);
      const observed = await observedRun(ctx, img, coldAndWarm);
      results.push({ img, saves, scans, observed });
    }
  } finally {
    rmSync(vulnDir, { recursive: true, force: true });
  }
  return summary(ctx, results.map(imageSummary));
}

/** Clair's version, and the made-up Debian 12 advisories every instance imports (written into `vulnDir`). */
function prepareAdvisories({ env, say }, vulnDir) {
  const version = spawnSync('bash', [REAL_CLAIR_SCRIPT, 'version'], { env, encoding: 'utf8' });
  if (version.status !== 0) throw new Error(`real-clair.sh version: ${version.stderr}`.trim());
  const vulnFile = path.join(vulnDir, 'debian12.jsonl.gz');
  const gen = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/vuln-file.ts', 'docker-clair-test/debian12', vulnFile],
    { cwd: ROOT, env, encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`test/helpers/vuln-file.ts: ${gen.stderr}`.trim());
  say(`  Clair: ${version.stdout.trim()}; advisories: ${gen.stdout.trim()}`);
  return vulnFile;
}

/**
 * `coldAndWarm(img, { runEnv, ready, between })`: a fresh instance (started and loaded before `ready`, not timed);
 * a cold scan, then a warm rescan on it.
 */
function coldAndWarmRealScans({ binary, env, dockerdPid }, vulnFile) {
  const scanArgs = (url, img) => ['scan', '--clair', url, '-q', '--format', 'json', img.ref];
  const measured = async (clair, label, img, runEnv) => {
    const mark = clair.tail.entries.length;
    const before = cpuSnapshot(dockerdPid, clair.pid, clair.pgPid);
    const run = await runMeasured(label, binary, scanArgs(clair.url, img), { env: runEnv, sample: true });
    const cpu = cpuDelta(before, cpuSnapshot(dockerdPid, clair.pid, clair.pgPid));
    clair.tail.read();
    return { run, cpu, log: clair.tail.entries.slice(mark) };
  };
  return async (img, { runEnv = env, ready = async () => '', between = () => {} } = {}) => {
    const clair = await startRealClair(env, vulnFile);
    try {
      const waited = await ready();
      const { run: cold, cpu: coldCpu, log: coldLog } = await measured(clair, `cold scan of ${img.ref} (real Clair)`, img, runEnv);
      const coldVerdict = checkScan(`cold scan of ${img.ref} (real Clair)`, cold, img);
      const coldPosts = clairRequests(coldLog).filter((r) => r.method === 'POST' && r.uri === '/indexer/api/v1/index_report' && r.status === 201).length;
      if (coldPosts < 2) throw new Error(`cold scan of ${img.ref}: Clair indexed ${coldPosts} manifest(s); was it cold?`);
      const coldPhases = realPhases(cold, coldLog);
      between();
      const { run: warm, cpu: warmCpu, log: warmLog } = await measured(clair, `warm scan of ${img.ref} (real Clair)`, img, runEnv);
      const warmReqs = clairRequests(warmLog);
      const warmVerdict = checkScan(`warm scan of ${img.ref} (real Clair)`, warm, img);
      const warmPosts = warmReqs.filter((r) => r.method === 'POST' && r.uri === '/indexer/api/v1/index_report').length;
      const warmMatch = warmReqs.find((r) => r.method === 'GET' && r.uri.startsWith('/matcher/api/v1/vulnerability_report/'))?.ms;
      return { cold, coldCpu, coldVerdict, coldPosts, coldPhases, coldLog, warm, warmCpu, warmVerdict, warmPosts, warmMatch, waited };
    } finally {
      await clair.stop();
    }
  };
}

/**
 * Observed run through the counting proxy (not timed with the rounds): export requests of the cold scan and the
 * warm rescan, and the export's first and last byte against Clair's fetches.
 */
async function observedRun(ctx, img, coldAndWarm) {
  const observed = await withDockerProxy(ctx, async (proxy, proxyEnv) => {
    if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
    await ctx.save(img, proxyEnv);
    const refSave = proxy.saves();
    let coldSaves;
    const c = await coldAndWarm(img, {
      runEnv: proxyEnv,
      ready: async () => {
        if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
        proxy.reset();
        return '';
      },
      between: () => {
        coldSaves = proxy.saves().map((r) => ({ ...r }));
        proxy.reset();
      },
    });
    return { refSave, coldSaves, warmSaves: proxy.saves(), c };
  });
  const epoch = (t) => performance.timeOrigin + t;
  ctx.say(`    via proxy: docker save: ${exportF(observed.refSave)}`);
  const oc = observed.c;
  ctx.say(`    via proxy: cold scan ${secsF(oc.cold.wallMs)}: ${observed.coldSaves.length} export request(s); ${exportF(observed.coldSaves)}`);
  const ex = observed.coldSaves.length === 1 ? observed.coldSaves[0] : undefined;
  if (ex && oc.coldPhases && ex.firstByteAt !== undefined) {
    const p = oc.coldPhases;
    const t0 = oc.cold.startedAt;
    ctx.say(`      timeline from spawn: export requested ${secsF(epoch(ex.at) - t0)}, first byte ${secsF(epoch(ex.firstByteAt) - t0)}, ` +
      `first layer POST ${secsF(p.firstLayerStart - t0)}, export last byte ${secsF(epoch(ex.lastByteAt) - t0)}, ` +
      `last layer fetched ${secsF(p.lastFetchDone - t0)}, exit ${secsF(oc.cold.endedAt - t0)}`);
  }
  ctx.say(`      phases: ${realPhasesF(oc.coldPhases)}`);
  ctx.say(`    via proxy: warm scan: ${observed.warmSaves.length} export request(s)`);
  return observed;
}

/** One image's medians and maxima over its rounds and the observed run. */
function imageSummary(rounds) {
  const { scans, saves } = rounds;
  return {
    ...roundsSummary(rounds),
    warmMatch: median(scans.map((s) => s.warmMatch ?? NaN)),
    ph: scans.every((s) => s.coldPhases)
      ? Object.fromEntries(REAL_PARTS.concat('match').map((k) => [k, median(scans.map((s) => s.coldPhases[k] ?? NaN))])) : undefined,
    verdict: scans[0].coldVerdict,
    cpu: cpuSummary(saves, scans),
  };
}

function cpuSummary(saves, scans) {
  return {
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
  };
}

const s2 = (ms) => (ms === undefined || Number.isNaN(ms) ? 'n/a' : (ms / 1000).toFixed(2));

function summary(ctx, [small, big]) {
  const { rows, row } = twoColumnRows();
  row('real Clair v4.9', small.img.name, big.img.name, 'goal');
  row('docker save > /dev/null, median', `${secsF(small.saveMs)} (${rangeF(small.saveRange)})`, `${secsF(big.saveMs)} (${rangeF(big.saveRange)})`);
  row('  save first / last byte (proxy)', ...[small, big].map((p) => (p.refSave?.firstByteAt !== undefined
    ? `${s2(p.refSave.firstByteAt - p.refSave.at)} / ${s2(p.refSave.lastByteAt - p.refSave.at)} s` : 'n/a')), '(one observed save)');
  row('cold scan, median', `${secsF(small.coldMs)} (${rangeF(small.coldRange)})`, `${secsF(big.coldMs)} (${rangeF(big.coldRange)})`);
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
  row('peak RSS, warm rescan (max)', mbF(small.warmRss), mbF(big.warmRss), `(baseline \`version\`: ${mbF(ctx.baseRss)})`);
  sharedGoalRows(row, small, big);
  cpuRows(row, small, big);
  ctx.say(`  results against the real Clair (wall times: median of ${ctx.opts.runs}, range in brackets; RSS: max over the rounds; MB = 10^6 bytes)`);
  ctx.say(idleOrNotLine(ctx));
  for (const r of rows) ctx.say(r);
  const pass = scanGoalsMet(small, big);
  return { pass, lines: [] };
}

function cpuRows(row, small, big) {
  row('CPU s during save (median)', `dockerd ${cpuF(small.cpu.saveDockerd)}, busy ${cpuF(small.cpu.saveBusy)}`,
    `dockerd ${cpuF(big.cpu.saveDockerd)}, busy ${cpuF(big.cpu.saveBusy)}`);
  row('CPU s during cold scan (median)', `plugin ${cpuF(small.cpu.client)}, dockerd ${cpuF(small.cpu.dockerd)}`,
    `plugin ${cpuF(big.cpu.client)}, dockerd ${cpuF(big.cpu.dockerd)}`);
  row('  clair / postgres', `${cpuF(small.cpu.clair)} / ${cpuF(small.cpu.pg)}`, `${cpuF(big.cpu.clair)} / ${cpuF(big.cpu.pg)}`);
  row('  machine busy / other', `${cpuF(small.cpu.busy)} / ${cpuF(small.cpu.other)}`, `${cpuF(big.cpu.busy)} / ${cpuF(big.cpu.other)}`);
  row('Clair write_bytes, cold scan (median)', mbF(small.cpu.clairWrote), mbF(big.cpu.clairWrote), '(its fetched layers, in its TMPDIR)');
  row('CPU s, warm rescan: clair / postgres', `${cpuF(small.cpu.warmClair)} / ${cpuF(small.cpu.warmPg)}`, `${cpuF(big.cpu.warmClair)} / ${cpuF(big.cpu.warmPg)}`);
}
