// scan-relay: the plugin's own cost as a relay between `docker save` and Clair v4, with Clair's work taken out.
// The Clair double in `--layers discard` mode fetches every layer to its end and throws it away (no hash, no
// unpacking), so what a cold scan costs beyond the export is the plugin's. Per image: rounds of a `docker save >
// /dev/null`, a cold scan against a fresh discarding double and (when Go can build it) the floor relay of
// relay-floor.mjs, interleaved; then one cold scan against a double reading layers at 20 MB/s (`--layer-rate`), for
// memory when Clair is slower than the export.
//
// The discarding double indexes no packages, so the scan ends with exit 3 and a JSON report saying so ("Clair
// indexed no packages in the image, so finding no vulnerabilities says nothing"): that is what is checked, with
// the double having indexed every layer.
import { exportF, idleOrNotLine, pairedWalls, rangeF, runRounds, saveStep, scanContext, startDouble, twoColumnRows, withDockerProxy } from './scan-common.mjs';
import { benchEnv, cpuF, mbF, median, rel, runLine, runMeasured, secsF, verdictF, withPrivateBinary } from './common.mjs';
import { spawnSync } from 'node:child_process';
import { cpuDelta, cpuSnapshot, waitForIdle } from './proc.mjs';
import { buildFloor, floorRelay, startSink } from './relay-floor.mjs';

/**
 * Goals for the relay alone. The wall-time ratio depends on the image store: the classic store stages the export
 * before its first byte (<= 1.10), the containerd store streams it from the first byte (<= 1.05).
 */
export const RELAY_GOALS = { ratio: 1.10, containerdRatio: 1.05, cpuPerGb: 0.8, rssBytes: 100e6, rssRatio: 1.1, savesCold: 1 };
const THROTTLE_RATE = 20e6;

export function scanRelayBenchmark(opts) {
  return withPrivateBinary(opts, scanRelayWith);
}

async function scanRelayWith(opts, original, binary) {
  const ctx = await scanContext(opts, original, binary,
    `scan-relay: cold \`docker-clair scan\` against a Clair double that discards the layers it fetches, vs \`docker save > /dev/null\`; ` +
    `${opts.runs} runs each after ${opts.warmup} warm-up(s), interleaved; then one cold scan per image against a double reading at ${mbF(THROTTLE_RATE)}/s`);
  const floor = buildFloor();
  ctx.say(floor.missing
    ? `  floor relay: skipped (${floor.missing}); scripts/bench/relay-floor needs Go to build`
    : `  floor relay: ${rel(floor.binary)} (built from scripts/bench/relay-floor: the export copied to a discarding TCP reader, nothing else)`);
  const sink = floor.binary ? await startSink(floor.binary) : undefined;
  try {
    const results = [];
    for (const img of ctx.images) results.push(await relayImage(ctx, img, floor.binary, sink));
    return summary(ctx, results);
  } finally {
    await sink?.stop();
  }
}

async function relayImage(ctx, img, floor, sink) {
  const { opts } = ctx;
  ctx.say(`  ${img.name}: ${opts.warmup} warm-up round(s), then ${opts.runs} rounds of save, cold scan (discarding double)` +
    `${floor ? ' and floor relay' : ''}, order rotating`);
  const saves = [];
  const scans = [];
  const floors = [];
  const floorStep = async () => {
    const waited = await ctx.idle();
    const f = await floorRelay(ctx, img, floor, sink);
    floors.push(f);
    ctx.say(runLine('floor', f.r, f.cpu, `; relayed ${mbF(f.bytes)}${waited}`, 'sink'));
  };
  await runRounds(ctx, img, () => coldScan(ctx, img, ['--layers', 'discard']), () => [saveStep(ctx, img, saves), async () => {
    const waited = await ctx.idle();
    const c = await coldScan(ctx, img, ['--layers', 'discard']);
    scans.push(c);
    ctx.say(runLine('cold', c.r, c.cpu, `; double indexed ${c.posts} manifests${waited}`));
  }, ...(floor ? [floorStep] : [])]);
  if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
  const throttled = await coldScan(ctx, img, ['--layers', 'discard', '--layer-rate', String(THROTTLE_RATE)]);
  ctx.say(runLine(`cold at ${mbF(THROTTLE_RATE)}/s`, throttled.r, throttled.cpu, `; double indexed ${throttled.posts} manifests`));
  if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
  const observed = await withDockerProxy(ctx, async (proxy, proxyEnv) => {
    await coldScan(ctx, img, ['--layers', 'discard'], proxyEnv);
    return proxy.saves();
  });
  ctx.say(`    via proxy: cold scan: ${observed.length} export request(s); ${exportF(observed)}`);
  return imageSummary(img, saves, scans, throttled, observed, floors);
}

/** A fresh double with `doubleArgs`, one cold scan against it: exit 3 and every layer indexed, else it throws. */
async function coldScan(ctx, img, doubleArgs, runEnv = ctx.env) {
  const dbl = await startDouble(benchEnv(), doubleArgs);
  try {
    const before = cpuSnapshot(ctx.dockerdPid, dbl.pid);
    const label = `cold scan of ${img.ref} (double ${doubleArgs.join(' ')})`;
    const r = await runMeasured(label, ctx.binary, ['scan', '--clair', dbl.url, '-q', '--format', 'json', img.ref], { env: runEnv, sample: true });
    const cpu = cpuDelta(before, cpuSnapshot(ctx.dockerdPid, dbl.pid));
    let reason;
    try {
      reason = JSON.parse(r.stdout).images?.[0]?.reason;
    } catch {
      reason = undefined;
    }
    if (r.exit !== 3 || !/indexed no packages/.test(reason ?? '')) {
      throw new Error(`${label}: expected exit 3 and a report saying no packages were indexed, got exit ${r.exit} (${reason})\n${r.stderr}`.trim());
    }
    const posts = dbl.indexPosts();
    // One-layer manifests (one per layer) and the image's: the double fetched every layer.
    if (posts < img.layers + 1) throw new Error(`${label}: the double indexed ${posts} manifest(s), expected ${img.layers + 1}`);
    return { r, cpu, posts };
  } finally {
    await dbl.stop();
  }
}

function imageSummary(img, saves, scans, throttled, observed, floors) {
  const cpuS = median(scans.map((s) => s.r.cpuS));
  const floorCpuS = floors.length ? median(floors.map((f) => f.r.cpuS)) : undefined;
  return {
    img,
    ...pairedWalls(saves, scans.map((s) => s.r)),
    floor: floors.length ? { ...pairedWalls(saves, floors.map((f) => f.r)), cpuS: floorCpuS, cpuPerGb: floorCpuS / (img.size / 1e9) } : undefined,
    cpuS,
    cpuPerGb: cpuS / (img.size / 1e9),
    dockerdS: median(scans.map((s) => s.cpu.dockerd ?? Number.NaN)),
    coldRss: Math.max(...scans.map((s) => s.r.rssKb * 1024)),
    coldAnon: Math.max(...scans.map((s) => s.r.sampled?.anon ?? 0)),
    coldFile: Math.max(...scans.map((s) => s.r.sampled?.file ?? 0)),
    throttledRss: throttled.r.rssKb * 1024,
    throttledMs: throttled.r.wallMs,
    written: Math.max(...scans.map((s) => s.r.io.write_bytes), throttled.r.io.write_bytes),
    savesCold: observed.length,
  };
}

function summary(ctx, [small, big]) {
  const store = imageStore(ctx.env);
  const g = { ...RELAY_GOALS, ratio: store === 'containerd' ? RELAY_GOALS.containerdRatio : RELAY_GOALS.ratio };
  const { rows, row } = twoColumnRows();
  row('', small.img.name, big.img.name, 'goal');
  row('docker save > /dev/null, median', `${secsF(small.saveMs)} (${rangeF(small.saveRange)})`, `${secsF(big.saveMs)} (${rangeF(big.saveRange)})`, '');
  row('cold scan (discarding), median', `${secsF(small.coldMs)} (${rangeF(small.coldRange)})`, `${secsF(big.coldMs)} (${rangeF(big.coldRange)})`, '');
  row('cold scan ÷ save', `${small.ratio.toFixed(2)} ${verdictF(small.ratio <= g.ratio)}`, `${big.ratio.toFixed(2)} ${verdictF(big.ratio <= g.ratio)}`,
    `<= ${g.ratio.toFixed(2)} (${store} store)`);
  row('plugin CPU, cold scan (median)', `${cpuF(small.cpuS)} s`, `${cpuF(big.cpuS)} s`, `(dockerd ${cpuF(small.dockerdS)} / ${cpuF(big.dockerdS)} s)`);
  row('  per GB of image', `${small.cpuPerGb.toFixed(2)} ${verdictF(small.cpuPerGb <= g.cpuPerGb)}`, `${big.cpuPerGb.toFixed(2)} ${verdictF(big.cpuPerGb <= g.cpuPerGb)}`,
    `<= ${g.cpuPerGb} cpu-s/GB`);
  if (small.floor && big.floor) {
    // For reference, not goals: the same measures of the floor relay, in the same rounds.
    row('floor relay, median', `${secsF(small.floor.coldMs)} (${rangeF(small.floor.coldRange)})`, `${secsF(big.floor.coldMs)} (${rangeF(big.floor.coldRange)})`,
      '(Go, the export copied to a discarding reader)');
    row('  floor relay ÷ save', small.floor.ratio.toFixed(2), big.floor.ratio.toFixed(2), '(reference: what any relay reaches here)');
    row('  floor relay CPU (median), per GB', `${cpuF(small.floor.cpuS)} s, ${small.floor.cpuPerGb.toFixed(2)}`,
      `${cpuF(big.floor.cpuS)} s, ${big.floor.cpuPerGb.toFixed(2)}`, '(reference)');
  }
  // What each further GB costs, start-up and per-scan round trips taken out: the CPU difference of the two images.
  const perGb = (a, b) => (b - a) / ((big.img.size - small.img.size) / 1e9);
  row(`CPU per further GB (${big.img.name} − ${small.img.name})`, `plugin ${perGb(small.cpuS, big.cpuS).toFixed(2)}`,
    small.floor && big.floor ? `floor ${perGb(small.floor.cpuS, big.floor.cpuS).toFixed(2)}` : '', '(reference)');
  row('peak RSS, discarding (max)', `${mbF(small.coldRss)} ${verdictF(small.coldRss <= g.rssBytes)}`, `${mbF(big.coldRss)} ${verdictF(big.coldRss <= g.rssBytes)}`,
    `<= ${mbF(g.rssBytes)}`);
  row('  sampled RssAnon / RssFile (max)', `${mbF(small.coldAnon)} / ${mbF(small.coldFile)}`, `${mbF(big.coldAnon)} / ${mbF(big.coldFile)}`, '(every 100 ms)');
  row(`peak RSS, at ${mbF(THROTTLE_RATE)}/s`, `${mbF(small.throttledRss)} ${verdictF(small.throttledRss <= g.rssBytes)}`,
    `${mbF(big.throttledRss)} ${verdictF(big.throttledRss <= g.rssBytes)}`, `<= ${mbF(g.rssBytes)} (scan ${secsF(small.throttledMs)} / ${secsF(big.throttledMs)})`);
  const ratio = big.coldRss / small.coldRss;
  const throttledRatio = big.throttledRss / small.throttledRss;
  row(`peak RSS ${big.img.name} ÷ ${small.img.name}`, `throttled ${throttledRatio.toFixed(2)} ${verdictF(throttledRatio <= g.rssRatio)}`,
    `discarding ${ratio.toFixed(2)} ${verdictF(ratio <= g.rssRatio)}`, `<= ${g.rssRatio}`);
  row('docker save calls, cold (proxy)', `${small.savesCold} ${verdictF(small.savesCold === g.savesCold)}`, `${big.savesCold} ${verdictF(big.savesCold === g.savesCold)}`, '1');
  row('client write_bytes (max)', `${small.written} ${verdictF(small.written === 0)}`, `${big.written} ${verdictF(big.written === 0)}`, '0');
  ctx.say(`  results (wall times: median of ${ctx.opts.runs}, range in brackets; RSS: max over the rounds; MB = 10^6 bytes)`);
  ctx.say(idleOrNotLine(ctx));
  for (const r of rows) ctx.say(r);
  const pass = [small, big].every((p) => p.ratio <= g.ratio && p.cpuPerGb <= g.cpuPerGb && p.coldRss <= g.rssBytes &&
    p.throttledRss <= g.rssBytes && p.savesCold === g.savesCold && p.written === 0) && ratio <= g.rssRatio && throttledRatio <= g.rssRatio;
  return { pass, lines: [] };
}

/** The daemon's image store, as `docker info` shows it: the containerd store is a driver whose status names a snapshotter. */
function imageStore(env) {
  const r = spawnSync('docker', ['info', '--format', '{{json .DriverStatus}}'], { env, encoding: 'utf8' });
  return /io\.containerd\.snapshotter/.test(r.stdout ?? '') ? 'containerd' : 'classic';
}
