// scan-many: one `docker-clair scan a b c` of three images sharing a ~200 MB base (docker-clair-bench/many-{a,b,c}:
// the 200m bench image plus 5 MB of their own), cold, against a Clair double that discards the layers it fetches,
// paired with `docker save a b c > /dev/null`: the images Clair lacks should cost one export of them together, shared
// layers streamed once. Rounds interleaved as in scan-relay; then one scan through the counting proxy for the exports.
//
// The discarding double indexes no packages, so every image ends "indexed no packages" (exit 3): that is what is
// checked, with the double having indexed the preflight's probe, each distinct layer once and the three images' manifests.
import { exportF, idleOrNotLine, inspectImage, pairedWalls, rangeF, runRounds, saveStep, scanContext, startDouble, twoColumnRows, withDockerProxy } from './scan-common.mjs';
import { benchEnv, cpuF, mbF, median, runLine, runMeasured, secsF, verdictF, withPrivateBinary } from './common.mjs';
import { cpuDelta, cpuSnapshot, waitForIdle } from './proc.mjs';

export const MANY_GOALS = { ratio: 1.10, exports: 1, rssBytes: 100e6 };
const MANY_REFS = ['docker-clair-bench/many-a:latest', 'docker-clair-bench/many-b:latest', 'docker-clair-bench/many-c:latest'];

export function scanManyBenchmark(opts) {
  return withPrivateBinary(opts, scanManyWith);
}

async function scanManyWith(opts, original, binary) {
  const ctx = await scanContext(opts, original, binary,
    'scan-many: one cold `docker-clair scan` of three images sharing a ~200 MB base, against a Clair double that discards the layers ' +
    `it fetches, vs one \`docker save\` of the three > /dev/null; ${opts.runs} runs each after ${opts.warmup} warm-up(s), interleaved`);
  const img = manyImages(ctx);
  ctx.say(`  ${img.name}: ${img.layers} distinct layers, ${mbF(img.size)} in all (base counted once); ` +
    `${opts.warmup} warm-up round(s), then ${opts.runs} rounds of save and cold scan, order rotating`);
  const saves = [];
  const scans = [];
  await runRounds(ctx, img, () => coldScan(ctx, img), () => [saveStep(ctx, img, saves), async () => {
    const waited = await ctx.idle();
    const c = await coldScan(ctx, img);
    scans.push(c);
    ctx.say(runLine('cold', c.r, c.cpu, `; double indexed ${c.posts} manifests${waited}`));
  }]);
  if (ctx.idleMs > 0) await waitForIdle(ctx.idleMs);
  const observed = await withDockerProxy(ctx, async (proxy, proxyEnv) => {
    await coldScan(ctx, img, proxyEnv);
    return proxy.saves();
  });
  ctx.say(`    via proxy: cold scan: ${observed.length} export request(s) (${observed.map((r) => r.path).join(', ')}); ${exportF(observed)}`);
  return summary(ctx, img, saves, scans, observed);
}

/** The three images as one bench "image": their refs, distinct layers, and size with the shared base counted once. */
function manyImages(ctx) {
  const facts = MANY_REFS.map((ref) => ({ ref, ...inspectImage(ref, ctx.env) }));
  const distinct = new Set(facts.flatMap((f) => f.diffIds));
  const base = ctx.images.find((i) => i.name === '200m');
  const own = facts.reduce((sum, f) => sum + (f.size - (base?.size ?? 0)), 0);
  for (const f of facts) ctx.say(`  ${f.ref}: ${f.id.slice(0, 19)}…, ${mbF(f.size)}, ${f.layers} layers`);
  return { name: '3 images', ref: MANY_REFS.join(' '), refs: MANY_REFS, ids: facts.map((f) => f.id), layers: distinct.size, size: (base?.size ?? 0) + own };
}

/** A fresh discarding double, one cold scan of the three: each image "indexed no packages", every layer indexed once. */
async function coldScan(ctx, img, runEnv = ctx.env) {
  const dbl = await startDouble(benchEnv(), ['--layers', 'discard']);
  try {
    const before = cpuSnapshot(ctx.dockerdPid, dbl.pid);
    const label = `cold scan of ${img.refs.join(' ')}`;
    const r = await runMeasured(label, ctx.binary, ['scan', '--clair', dbl.url, '-q', '--format', 'json', ...img.refs], { env: runEnv, sample: true });
    const cpu = cpuDelta(before, cpuSnapshot(ctx.dockerdPid, dbl.pid));
    let images = [];
    try {
      images = JSON.parse(r.stdout).images ?? [];
    } catch {
      images = [];
    }
    const ok = images.length === img.refs.length && images.every((i, k) => i.image?.id === img.ids[k] && /indexed no packages/.test(i.reason ?? ''));
    if (r.exit !== 3 || !ok) {
      throw new Error(`${label}: expected exit 3 and a report of the three images saying no packages were indexed, got exit ${r.exit} ` +
        `(${images.map((i) => i.reason).join('; ')})\n${r.stderr}`.trim());
    }
    const posts = dbl.indexPosts();
    // The preflight's probe, one one-layer manifest per distinct layer, and the three images' own.
    const expected = 1 + img.layers + img.refs.length;
    if (posts !== expected) throw new Error(`${label}: the double indexed ${posts} manifest(s), expected ${expected}`);
    return { r, cpu, posts };
  } finally {
    await dbl.stop();
  }
}

function summary(ctx, img, saves, scans, observed) {
  const g = MANY_GOALS;
  const walls = pairedWalls(saves, scans.map((s) => s.r));
  const rss = Math.max(...scans.map((s) => s.r.rssKb * 1024));
  const cpuS = median(scans.map((s) => s.r.cpuS));
  const written = Math.max(...scans.map((s) => s.r.io.write_bytes));
  const { rows, row } = twoColumnRows();
  row('', img.name, '', 'goal');
  row('docker save of the three, median', `${secsF(walls.saveMs)} (${rangeF(walls.saveRange)})`, '', '');
  row('cold scan of the three, median', `${secsF(walls.coldMs)} (${rangeF(walls.coldRange)})`, '', '');
  row('cold scan ÷ save', `${walls.ratio.toFixed(2)} ${verdictF(walls.ratio <= g.ratio)}`, '', `<= ${g.ratio.toFixed(2)}`);
  row('export requests, cold (proxy)', `${observed.length} ${verdictF(observed.length === g.exports)}`, '', `${g.exports}`);
  row('plugin CPU, cold scan (median)', `${cpuF(cpuS)} s`, '', `(dockerd ${cpuF(median(scans.map((s) => s.cpu.dockerd ?? Number.NaN)))} s)`);
  row('peak RSS (max)', `${mbF(rss)} ${verdictF(rss <= g.rssBytes)}`, '', `<= ${mbF(g.rssBytes)}`);
  row('client write_bytes (max)', `${written} ${verdictF(written === 0)}`, '', '0');
  ctx.say(`  results (wall times: median of ${ctx.opts.runs}, range in brackets; RSS: max over the rounds; MB = 10^6 bytes)`);
  ctx.say(idleOrNotLine(ctx));
  for (const r of rows) ctx.say(r);
  const pass = walls.ratio <= g.ratio && observed.length === g.exports && rss <= g.rssBytes && written === 0;
  return { pass, lines: [] };
}
