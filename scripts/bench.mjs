#!/usr/bin/env node
// Startup benchmarks for the packaged plugin.
//
//   npm run bench                          every available benchmark
//   npm run bench -- metadata              one (or several) by name
//   npm run bench -- metadata --runs 50 --warmup 5
//   npm run bench -- --list
//
// Exits non-zero only when a benchmark cannot run (missing binary, a command fails); a missed goal is
// reported as FAIL but is a measurement, not an error.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, binaryPath, loadConfig } from './bundle.mjs';

const rel = (p) => path.relative(ROOT, p).split(path.sep).join('/');

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

async function hostBinaryAndNode() {
  const config = await loadConfig();
  const binary = binaryPath(config, config.hostTarget);
  if (!existsSync(binary)) throw new Error(`${rel(binary)} is missing: run \`npm run package\` first`);
  const node = path.join(config.cacheDir, `node-${config.hostTarget}-${config.node}`, 'bin', 'node');
  if (!existsSync(node)) throw new Error(`${rel(node)} is missing: run \`npm run package\` first (it fetches the runtime)`);
  return { config, binary, node };
}

/**
 * The registry of benchmarks. Each entry: description, and run(opts) -> { lines, pass? }.
 * `available()` may return a reason string when the benchmark cannot run here (it is then skipped
 * by a bare `npm run bench`, and an error when named explicitly).
 */
const BENCHMARKS = {
  metadata: {
    description: '`docker-clair docker-cli-plugin-metadata` (run before every docker clair call) vs `node -e 0`',
    goalRatio: 1.3,
    async run(opts) {
      const { config, binary, node } = await hostBinaryAndNode();
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
          `  ratio of medians ${ratio.toFixed(2)}  (goal <= ${this.goalRatio})  ${pass ? 'PASS' : 'FAIL'}`,
        ],
      };
    },
  },
  // Further benchmarks (e.g. `scan` against the Clair double) are added here as named entries.
};

function parseArgs(argv) {
  const opts = { names: [], runs: 30, warmup: 3, list: false };
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
    else if (a.startsWith('-')) throw new Error(`unknown option ${a} (use --runs N, --warmup N, --list)`);
    else opts.names.push(a);
  }
  if (opts.runs < 1) throw new Error('--runs must be at least 1');
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    for (const [name, b] of Object.entries(BENCHMARKS)) console.log(`${name.padEnd(10)} ${b.description}`);
    return;
  }
  for (const name of opts.names) {
    if (!BENCHMARKS[name]) throw new Error(`unknown benchmark "${name}"; available: ${Object.keys(BENCHMARKS).join(', ')}`);
  }
  const explicit = opts.names.length > 0;
  const names = explicit ? opts.names : Object.keys(BENCHMARKS);
  const summary = [];
  for (const name of names) {
    const b = BENCHMARKS[name];
    const missing = b.available ? await b.available() : undefined;
    if (typeof missing === 'string') {
      if (explicit) throw new Error(`${name}: ${missing}`);
      console.log(`${name}: skipped (${missing})`);
      continue;
    }
    console.log(`${name}: ${b.description}; ${opts.runs} runs each after ${opts.warmup} warm-ups, interleaved`);
    const result = await b.run({ runs: opts.runs, warmup: opts.warmup });
    for (const line of result.lines) console.log(line);
    if (result.pass !== undefined) summary.push(`${name} ${result.pass ? 'PASS' : 'FAIL'}`);
  }
  if (summary.length > 1) console.log(`summary: ${summary.join(', ')}`);
}

main().catch((error) => {
  console.error(`bench: ${error.message ?? error}`);
  process.exitCode = 1;
});
