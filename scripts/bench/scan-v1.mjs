// scan-v1: the same images and machinery as `scan`, against the Clair double in `--api v1` mode, in the default
// mode (each layer reduced to the files Clair 1.x/2.x reads, held until its parent is known: one `docker save`
// whatever the layer order). `--v1-full-layers` (whole layers under --v1-buffer, further passes) is not measured
// here: docs/benchmarks.md keeps its earlier numbers.
import { SCAN_GOALS, checkScan, idleLine, pairedWalls, rangeF, runRounds, saveStep, scanContext, startDouble, withDockerProxy } from './scan-common.mjs';
import { benchEnv, cpuF, mbF, median, runLine, runMeasured, secsF, verdictF, withPrivateBinary } from './common.mjs';
import { cpuDelta, cpuSnapshot, waitForIdle } from './proc.mjs';

const V1_BUFFERS = [
  { name: 'reduced layers (default)', short: 'default', args: [], cap: Infinity },
];
/** The v1 goals: one read of the save, the whole plugin within 100 MB, memory not growing with the image. */
const V1_GOALS = { ratio: 1.05, rssBytes: 100e6, rssRatio: 1.1, savesCold: 1 };

/** The plugin's own account of a v1 scan (its -D output): passes over the save stream, the most bytes buffered. */
function v1Debug(stderr) {
  const one = /Clair v1: one pass over .*? \((\d+) read\(s\)\), .*?: (\d+) layer bytes read, at most (\d+) bytes held in memory/.exec(stderr);
  if (one) return { passes: Number(one[1]), skipped: 0, peakBuffered: Number(one[3]) };
  const m = /Clair v1: (\d+) pass\(es\) over .*?; (\d+) layer read\(s\) skipped for a further pass; at most (\d+) bytes held in memory/.exec(stderr);
  return m ? { passes: Number(m[1]), skipped: Number(m[2]), peakBuffered: Number(m[3]) } : undefined;
}

export function scanV1Benchmark(opts) {
  return withPrivateBinary(opts, scanV1BenchmarkWith);
}

const debugF = (d) => (d ? `plugin: ${d.passes} pass(es), at most ${mbF(d.peakBuffered)} of reduced layers held` : 'plugin: no pass line');

async function scanV1BenchmarkWith(opts, original, binary) {
  const ctx = await scanContext(opts, original, binary);
  const coldAndWarm = coldAndWarmV1Scans(ctx);
  const cols = [];
  for (const img of ctx.images) {
    ctx.say(`  ${img.name}: ${opts.warmup} warm-up round(s) (save + default-buffer cold scan, discarded), then ${opts.runs} rounds of ` +
      `save, cold scan --v1-buffer ${V1_BUFFERS.map((b) => b.short).join(', cold scan --v1-buffer ')}, order rotating`);
    const saves = [];
    const scans = V1_BUFFERS.map(() => []);
    await runRounds(ctx, img, () => coldAndWarm(img, V1_BUFFERS[0]), () => [
      saveStep(ctx, img, saves),
      ...V1_BUFFERS.map((buf, k) => async () => {
        const waited = await ctx.idle();
        const c = await coldAndWarm(img, buf);
        scans[k].push(c);
        ctx.say(runLine(`cold ${buf.short}`, c.cold, c.coldCpu, `; ${c.coldVerdict}; double indexed ${c.coldPosts} layers; ${debugF(c.coldDebug)}${waited}`));
        ctx.say(runLine(`warm ${buf.short}`, c.warm, c.warmCpu, `; double indexed ${c.warmPosts} layers; ${debugF(c.warmDebug)}`));
      }),
    ]);
    const observed = await observedRuns(ctx, img, coldAndWarm);
    cols.push(...V1_BUFFERS.map((buf, k) => column(img, buf, saves, scans[k], observed[k])));
  }
  return summary(ctx, cols);
}

/** `coldAndWarm(img, buf, runEnv, between)`: a fresh double in v1 mode; a cold scan, then a warm rescan on it. */
function coldAndWarmV1Scans({ binary, env, dockerdPid }) {
  // -D: the plugin logs (to stderr) how many passes it made and the most layer bytes it buffered.
  const scanArgs = (url, img, buf) => ['-D', 'scan', '--clair', url, '--clair-api', 'v1', ...buf.args, '-q', '--format', 'json', img.ref];
  return async (img, buf, runEnv = env, between = () => {}) => {
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
}

/** Observed run per buffer size, through the counting proxy: export requests of the cold scan and the warm rescan. */
async function observedRuns(ctx, img, coldAndWarm) {
  if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
  const { refSave, observed } = await withDockerProxy(ctx, async (proxy, proxyEnv) => {
    const runs = [];
    await ctx.save(img, proxyEnv);
    const ref = proxy.saves();
    for (const buf of V1_BUFFERS) {
      proxy.reset();
      let coldSaves;
      const c = await coldAndWarm(img, buf, proxyEnv, () => {
        coldSaves = proxy.saves().map((r) => ({ ...r }));
        proxy.reset();
      });
      const warmSaves = proxy.saves();
      runs.push({ buf, coldSaves, warmSaves, warmRequests: proxy.requests.map((r) => `${r.method} ${r.path.replace(/\?.*/, '')}`), c });
    }
    return { refSave: ref, observed: runs };
  });
  const exp = (r) => (r.firstByteAt !== undefined
    ? `first byte ${secsF(r.firstByteAt - r.at)}, last ${secsF(r.lastByteAt - r.at)}, ${mbF(r.bytes)}` : 'no bytes');
  ctx.say(`    via proxy: docker save: ${refSave.map(exp).join('; ')}`);
  for (const o of observed) {
    const t0 = o.coldSaves[0]?.at ?? 0;
    ctx.say(`    via proxy, --v1-buffer ${o.buf.short}: cold scan ${secsF(o.c.cold.wallMs)}: ${o.coldSaves.length} export request(s)` +
      `${o.coldSaves.map((r, k) => `\n      pass ${k + 1}: starts ${secsF(r.at - t0)} after the first, ${exp(r)}`).join('')}` +
      `\n      ${debugF(o.c.coldDebug)}; warm rescan: ${o.warmSaves.length} export request(s); daemon requests: ${o.warmRequests.join(', ')}`);
  }
  return observed;
}

/** One summary column: an image with one buffer size, over its rounds and its observed run. */
function column(img, buf, saves, sc, o) {
  const passes = sc.map((s) => s.coldDebug?.passes ?? NaN).concat(o.c.coldDebug?.passes ?? NaN);
  return {
    img, buf,
    ...pairedWalls(saves, sc.map((s) => s.cold)),
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
  };
}

/** Summary: one column per image × buffer size. */
function summary(ctx, cols) {
  const w = 24;
  const rows = [];
  const row = (label, cells, goal = '') => rows.push(`  ${label.padEnd(36)}${cells.map((c) => String(c).padEnd(w)).join('')}${goal}`);
  row('', cols.map((c) => `${c.img.name}, ${c.buf.short}`), 'goal / note');
  row('docker save > /dev/null, median', cols.map((c) => `${secsF(c.saveMs)} (${rangeF(c.saveRange)})`));
  row('cold v1 scan, median', cols.map((c) => `${secsF(c.coldMs)} (${rangeF(c.coldRange)})`));
  row('cold scan ÷ save', cols.map((c) => `${c.ratio.toFixed(2)} ${verdictF(c.ratio <= V1_GOALS.ratio)}`), `<= ${V1_GOALS.ratio}`);
  row('warm rescan, median', cols.map((c) => secsF(c.warmMs)));
  row('docker save passes cold / warm', cols.map((c) => `${c.savesCold} / ${c.savesWarm} ${verdictF(c.savesCold === 1 && c.savesWarm === 0)}`), '1 / 0 (proxy, observed run)');
  const onePass = (c) => c.pluginPasses[0] === 1 && c.pluginPasses[1] === 1;
  row('  reads reported by the plugin', cols.map((c) => `${c.pluginPasses[0] === c.pluginPasses[1] ? c.pluginPasses[0] : `${c.pluginPasses[0]}–${c.pluginPasses[1]}`} ${verdictF(onePass(c))}`), '1 in every cold run (-D)');
  row('reduced layer bytes held (max)', cols.map((c) => `${mbF(c.peakBuffered)}`), '(-D)');
  row('peak RSS, cold scan (max)', cols.map((c) => `${mbF(c.coldRss)} ${verdictF(c.coldRss <= V1_GOALS.rssBytes)}`), `<= ${mbF(V1_GOALS.rssBytes)}`);
  row('  peak RSS − baseline `version`', cols.map((c) => `${mbF(c.coldRss - ctx.baseRss)}`), `(baseline ${mbF(ctx.baseRss)})`);
  row('  sampled RssAnon / RssFile (max)', cols.map((c) => `${mbF(c.anon)} / ${mbF(c.file)}`), '(every 100 ms)');
  row('peak RSS, warm rescan (max)', cols.map((c) => `${mbF(c.warmRss)}`));
  for (const buf of V1_BUFFERS) {
    const [a, b] = cols.filter((c) => c.buf === buf);
    const r = b.coldRss / a.coldRss;
    row(`peak RSS ${b.img.name} ÷ ${a.img.name}, ${buf.short}`, [`${r.toFixed(2)} ${verdictF(r <= V1_GOALS.rssRatio)}`], `<= ${V1_GOALS.rssRatio}`);
  }
  row('client write_bytes (max)', cols.map((c) => `${c.written} ${verdictF(c.written <= SCAN_GOALS.writeBytes)}`), `${SCAN_GOALS.writeBytes}`);
  row('CPU s, cold scan (median)', cols.map((c) => `plugin ${cpuF(c.scanClientCpu)}`));
  row('  dockerd', cols.map((c) => cpuF(c.scanDockerdCpu)));
  ctx.say(`  results (wall times: median of ${ctx.opts.runs}, range in brackets; RSS: max over the rounds and the observed run; MB = 10^6 bytes)`);
  if (ctx.idleMs > 0) ctx.say(idleLine(ctx));
  for (const r of rows) ctx.say(r);
  // The point of this benchmark: one docker save per cold scan (observed through the proxy, and the plugin's own
  // count in every cold run), the time of that save, memory within the goal and not growing with the image,
  // nothing written to disk, no export on a warm rescan.
  const [small, large] = cols;
  const pass = cols.every((c) => c.ratio <= V1_GOALS.ratio && c.coldRss <= V1_GOALS.rssBytes && onePass(c) &&
    c.savesCold === V1_GOALS.savesCold && c.written <= SCAN_GOALS.writeBytes && c.savesWarm === 0) &&
    (small === undefined || large === undefined || large.coldRss / small.coldRss <= V1_GOALS.rssRatio);
  return { pass, lines: [] };
}
