#!/usr/bin/env node
// Benchmarks for the packaged plugin (dist/docker-clair; `npm run package` first). This file: the command line and
// the list of benchmarks; each benchmark lives in its own module beside it.
//
//   npm run bench                          every available benchmark
//   npm run bench -- metadata              one (or several) by name
//   npm run bench -- metadata --runs 50 --warmup 5
//   npm run bench -- scan [--runs 5 --warmup 1]
//   npm run bench -- scan-real             only the real-Clair part of scan (scan-double: only the double's)
//   npm run bench -- scan-v1 [--runs 3 --warmup 1]
//   npm run bench -- scan-relay [--runs 5 --warmup 1]
//   npm run bench -- scan-many [--runs 5 --warmup 1]
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
//   scan-v1   the same against the double in Clair v1 mode (--clair-api v1), default mode (layers reduced to the
//             files Clair v1 reads): wall time against docker save, peak RSS, docker save passes, client bytes written
//   scan-relay the plugin's own cost: cold scans against a double that discards the layers it fetches (CPU per GB,
//             wall time against docker save, peak RSS), and one against a double reading at 20 MB/s (peak RSS); in
//             the same rounds, with Go on PATH, a floor relay (scripts/bench/relay-floor) for reference
//   scan-many one cold scan of three images sharing a ~200 MB base against the discarding double, vs one `docker
//             save` of the three: wall time, export requests (one), peak RSS, client bytes written
//
// Exits non-zero only when a benchmark cannot run (missing binary, a command fails); a missed goal is
// reported as MISS but is a measurement, not an error.
import { verdictF } from './common.mjs';
import { metadata } from './metadata.mjs';
import { scanUnavailable } from './scan-common.mjs';
import { realClairMissing, scanRealBenchmark } from './scan-real.mjs';
import { scanManyBenchmark } from './scan-many.mjs';
import { scanRelayBenchmark } from './scan-relay.mjs';
import { scanV1Benchmark } from './scan-v1.mjs';
import { scanBenchmark } from './scan.mjs';

/**
 * The registry of benchmarks. Each entry: description, and run(opts) -> { lines, pass? }.
 * `available()` may return a reason string when the benchmark cannot run here (it is then skipped
 * by a bare `npm run bench`, and an error when named explicitly).
 */
const BENCHMARKS = {
  metadata,
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
    available: scanUnavailable,
  },
  'scan-double': {
    description: 'the Clair-double part of `scan` only',
    defaults: { runs: 5, warmup: 1 },
    explicitOnly: true,
    available: scanUnavailable,
    run: scanBenchmark,
  },
  'scan-real': {
    description: 'the real-Clair part of `scan` only: a fresh Clair v4.9 + PostgreSQL per cold scan (scripts/real-clair.sh)',
    defaults: { runs: 5, warmup: 1 },
    explicitOnly: true,
    available: () => scanUnavailable() ?? realClairMissing(),
    run: scanRealBenchmark,
  },
  'scan-v1': {
    description: 'cold/warm `docker-clair scan --clair-api v1` (default: reduced layers, one pass) vs `docker save > /dev/null`, Clair double --api v1',
    defaults: { runs: 3, warmup: 1 },
    available: scanUnavailable,
    run: scanV1Benchmark,
  },
  'scan-relay': {
    description: 'cold `docker-clair scan` vs `docker save > /dev/null` against a Clair double that discards the layers it fetches ' +
      '(the plugin\'s own CPU and memory), then against one reading at 20 MB/s; beside them a floor relay (Go) for reference',
    defaults: { runs: 5, warmup: 1 },
    available: scanUnavailable,
    run: scanRelayBenchmark,
  },
  'scan-many': {
    description: 'one cold `docker-clair scan a b c` of three images sharing a ~200 MB base vs one `docker save a b c > /dev/null`, ' +
      'against a Clair double that discards the layers it fetches: one export of the three',
    defaults: { runs: 5, warmup: 1 },
    available: scanUnavailable,
    run: scanManyBenchmark,
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
