// scan (the Clair-double part; `scan-double` alone): cold and warm scans of the bench images vs `docker save >
// /dev/null`, against a fresh Clair double per cold scan: wall time, peak RSS, docker save calls, client bytes written.
import { SCAN_GOALS, checkScan, exportF, idleOrNotLine, rangeF, roundsSummary, runRounds, scanGoalsMet, sharedGoalRows, saveStep, scanContext, startDouble, twoColumnRows, withDockerProxy } from './scan-common.mjs';
import { benchEnv, cpuF, mbF, median, runLine, runMeasured, secsF, verdictF, withPrivateBinary } from './common.mjs';
import { cpuDelta, cpuSnapshot, waitForIdle } from './proc.mjs';

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

export function scanBenchmark(opts) {
  return withPrivateBinary(opts, scanBenchmarkWith);
}

async function scanBenchmarkWith(opts, original, binary) {
  const ctx = await scanContext(opts, original, binary);
  const coldAndWarm = coldAndWarmScans(ctx);
  const results = [];
  for (const img of ctx.images) {
    ctx.say(`  ${img.name}: ${opts.warmup} warm-up round(s) (save + cold scan, discarded), then ${opts.runs} rounds, save and cold scan interleaved`);
    const saves = [];
    const scans = [];
    await runRounds(ctx, img, () => coldAndWarm(img), () => [saveStep(ctx, img, saves), async () => {
      const waited = await ctx.idle();
      const c = await coldAndWarm(img);
      scans.push(c);
      ctx.say(runLine('cold', c.cold, c.coldCpu, `; ${c.coldVerdict}; double indexed ${c.coldPosts} manifests${waited}`));
      ctx.say(`          cold scan phases: ${phasesF(c.coldPhases)}`);
      ctx.say(runLine('warm', c.warm, c.warmCpu, `; double indexed ${c.warmPosts} manifests`));
    }]);
    const observed = await observedRun(ctx, img, coldAndWarm);
    results.push({ img, saves, scans, observed });
  }
  return summary(ctx, results.map(imageSummary));
}

/** `coldAndWarm(img, runEnv, between)`: a fresh double; a cold scan, then a warm rescan on the same double. */
function coldAndWarmScans({ binary, env, dockerdPid }) {
  const scanArgs = (url, img) => ['scan', '--clair', url, '-q', '--format', 'json', img.ref];
  return async (img, runEnv = env, between = () => {}) => {
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
}

/**
 * Observed run: the same cold scan + warm rescan through the counting proxy, which counts the exports; a `docker
 * save` through the proxy gives the reference export's time to first byte.
 */
async function observedRun(ctx, img, coldAndWarm) {
  if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
  const observed = await withDockerProxy(ctx, async (proxy, proxyEnv) => {
    await ctx.save(img, proxyEnv);
    const refSave = proxy.saves();
    proxy.reset();
    let coldSaves;
    const c = await coldAndWarm(img, proxyEnv, () => {
      coldSaves = proxy.saves();
      proxy.reset();
    });
    const warmSaves = proxy.saves();
    return { refSave, coldSaves, warmSaves, warmRequests: proxy.requests.map((r) => `${r.method} ${r.path.replace(/\?.*/, '')}`), c };
  });
  ctx.say(`    via proxy: docker save: ${exportF(observed.refSave)}`);
  ctx.say(`    via proxy: cold scan: ${observed.coldSaves.length} export request(s) (${observed.coldSaves.map((r) => r.path).join(', ')}); ${exportF(observed.coldSaves)}; ` +
    `scan ${secsF(observed.c.cold.wallMs)}`);
  ctx.say(`    via proxy: warm scan: ${observed.warmSaves.length} export request(s); daemon requests: ${observed.warmRequests.join(', ')}`);
  return observed;
}

/** One image's medians and maxima over its rounds and the observed run. */
function imageSummary(rounds) {
  const { scans, saves } = rounds;
  const sampledMax = (key) => Math.max(...scans.map((s) => s.cold.sampled?.[key] ?? 0));
  return {
    ...roundsSummary(rounds),
    coldAnon: sampledMax('anon'),
    coldFile: sampledMax('file'),
    phases: scans.every((s) => s.coldPhases) ? {
      before: median(scans.map((s) => s.coldPhases.before)),
      layers: median(scans.map((s) => s.coldPhases.layers)),
      after: median(scans.map((s) => s.coldPhases.after)),
    } : undefined,
    cpu: cpuSummary(saves, scans),
  };
}

function cpuSummary(saves, scans) {
  return {
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
  };
}


/** Table of what was measured, with a verdict per goal. */
function summary(ctx, [small, big]) {
  const { rows, row } = twoColumnRows();
  row('', small.img.name, big.img.name, 'goal');
  row('image size (docker inspect)', `${mbF(small.img.size)}, ${small.img.layers} layers`, `${mbF(big.img.size)}, ${big.img.layers} layers`, '');
  row(`docker save > /dev/null, median`, `${secsF(small.saveMs)} (${rangeF(small.saveRange)})`, `${secsF(big.saveMs)} (${rangeF(big.saveRange)})`, '');
  row('cold scan, median', `${secsF(small.coldMs)} (${rangeF(small.coldRange)})`, `${secsF(big.coldMs)} (${rangeF(big.coldRange)})`, '');
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
  row('peak RSS, warm rescan (max)', mbF(small.warmRss), mbF(big.warmRss), `(baseline \`version\`: ${mbF(ctx.baseRss)})`);
  sharedGoalRows(row, small, big);
  cpuRows(row, small, big);
  ctx.say(`  results (wall times: median of ${ctx.opts.runs}, range in brackets; RSS: max over the rounds; MB = 10^6 bytes)`);
  ctx.say(idleOrNotLine(ctx));
  for (const r of rows) ctx.say(r);
  const pass = scanGoalsMet(small, big);
  return { pass, lines: [] };
}

function cpuRows(row, small, big) {
  row('CPU s during save (median)', `docker ${cpuF(small.cpu.saveClient)}, dockerd ${cpuF(small.cpu.saveDockerd)}`,
    `docker ${cpuF(big.cpu.saveClient)}, dockerd ${cpuF(big.cpu.saveDockerd)}`, '');
  row('  machine busy / other', `${cpuF(small.cpu.saveBusy)} / ${cpuF(small.cpu.saveOther)}`, `${cpuF(big.cpu.saveBusy)} / ${cpuF(big.cpu.saveOther)}`, '');
  row('CPU s during cold scan (median)', `plugin ${cpuF(small.cpu.scanClient)}, dockerd ${cpuF(small.cpu.scanDockerd)}`,
    `plugin ${cpuF(big.cpu.scanClient)}, dockerd ${cpuF(big.cpu.scanDockerd)}`, '');
  row('  double / machine busy / other', `${cpuF(small.cpu.scanDouble)} / ${cpuF(small.cpu.scanBusy)} / ${cpuF(small.cpu.scanOther)}`,
    `${cpuF(big.cpu.scanDouble)} / ${cpuF(big.cpu.scanBusy)} / ${cpuF(big.cpu.scanOther)}`, `(capacity ${big.cpu.cores.toFixed(1)} cpu-s per s)`);
}
