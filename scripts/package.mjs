#!/usr/bin/env node
// Builds the self-contained plugin executable(s): esbuild bundle -> Node SEA blob -> postject into
// the Node runtime from the npm package node-<os>-<arch>, so only the npm registry is needed (Node's SEA steps:
// nodejs doc/api/single-executable-applications.md).
//
//   npm run package                 host target only  -> dist/docker-clair
//   npm run package -- --all        every target in pkg.config.json (dist/docker-clair-linux-arm64, ...)
//   npm run package -- --target linux-arm64 [--target ...]
//   npm run package -- --force      rebuild even if the inputs are unchanged
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ROOT, SEA_ASSETS, binaryPath, bundle, loadConfig } from './bundle.mjs';

const rel = (p) => path.relative(ROOT, p).split(path.sep).join('/') || '.';
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** The platform-arch name of the machine running this script, in node-<os>-<arch> terms. */
export function currentTarget() {
  const os = process.platform === 'win32' ? 'win' : process.platform;
  return `${os}-${process.arch}`;
}

function run(cmd, args, { cwd = ROOT, env = cleanEnv(), what = `${cmd} ${args.join(' ')}` } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n');
    throw new Error(`${what} failed (exit ${r.status ?? r.signal})${out ? `:\n${out}` : ''}`);
  }
  return r;
}

/** Environment for child tools: the caller's NODE_OPTIONS must not leak into the blob build. */
function cleanEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

function runtimeDir(config, target) {
  return path.join(config.cacheDir, `node-${target}-${config.node}`);
}

function runtimeBinary(config, target) {
  return path.join(runtimeDir(config, target), 'bin', target.startsWith('win-') ? 'node.exe' : 'node');
}

/**
 * Returns the path of the Node runtime for a target, fetching it once with `npm pack` into the
 * cache dir. Only bin/node (and LICENSE) are kept.
 */
export async function ensureRuntime(config, target, log = () => {}) {
  const dir = runtimeDir(config, target);
  const bin = runtimeBinary(config, target);
  const marker = path.join(dir, '.complete');
  if (existsSync(marker) && existsSync(bin)) return bin;

  const spec = `node-${target}@${config.node}`;
  const started = performance.now();
  log(`runtime  fetching ${spec} with npm pack (once; cached in ${rel(config.cacheDir)}) ...`);
  await mkdir(config.cacheDir, { recursive: true });
  const work = path.join(config.cacheDir, `.fetch-${target}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    let tgz;
    try {
      const r = run('npm', ['pack', spec, '--pack-destination', work, '--json', '--silent'], { what: `npm pack ${spec}` });
      const info = JSON.parse(r.stdout);
      tgz = path.join(work, info[0].filename);
    } catch (error) {
      throw new Error(
        `cannot fetch the Node runtime ${spec} from the npm registry.\n` +
          `  Check that the registry configured for npm is reachable (npm config get registry) and that\n` +
          `  version ${config.node} of node-${target} exists (npm view node-${target} versions).\n` +
          `  Cause: ${error.message}`,
      );
    }
    const binMember = target.startsWith('win-') ? 'package/bin/node.exe' : 'package/bin/node';
    const listing = run('tar', ['tzf', tgz], { what: `tar tzf ${path.basename(tgz)}` }).stdout.split('\n');
    const members = [binMember, 'package/LICENSE'].filter((m) => listing.includes(m));
    if (!members.includes(binMember)) {
      throw new Error(`${path.basename(tgz)} has no ${binMember}; cannot use it as the runtime for ${target}`);
    }
    run('tar', ['xzf', tgz, '-C', work, ...members], { what: `tar xzf ${path.basename(tgz)}` });
    await rm(dir, { recursive: true, force: true });
    await rename(path.join(work, 'package'), dir);
    await writeFile(marker, `${spec}\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const { size } = await stat(bin);
  log(`runtime  ${rel(bin)}  ${mb(size)}  ${secs(performance.now() - started)}`);
  return bin;
}

async function sha256File(file) {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

function seaSettings(config, useCodeCache) {
  return {
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache,
    execArgv: config.execArgv,
    execArgvExtension: 'none',
  };
}

/**
 * Makes the SEA blob with the host runtime (must be the same Node version as the target's): its main script is
 * the launcher (src/sea-entry.ts), which answers the metadata call and otherwise runs the bundle, carried as an
 * asset together with its V8 code cache.
 */
async function makeBlob(config, hostNode, bundled, useCodeCache) {
  const dir = path.join(path.dirname(config.bundle), 'sea', useCodeCache ? 'code-cache' : 'no-code-cache');
  await mkdir(dir, { recursive: true });
  const blob = path.join(dir, 'sea-prep.blob');
  const assets = { [SEA_ASSETS.bundle]: bundled.outfile };
  if (useCodeCache) assets[SEA_ASSETS.codeCache] = await makeCodeCache(config, hostNode, bundled.outfile, dir);
  const seaConfig = { main: bundled.launcher, output: blob, ...seaSettings(config, useCodeCache), assets };
  const configFile = path.join(dir, 'sea-config.json');
  await writeFile(configFile, `${JSON.stringify(seaConfig, null, 2)}\n`);
  run(hostNode, ['--experimental-sea-config', configFile], { cwd: dir, what: 'node --experimental-sea-config' });
  return blob;
}

/**
 * The V8 code cache of the bundle, made by scripts/code-cache.cjs with the runtime the executable embeds and the
 * flags it runs with, in an environment where the training scan can reach no daemon, configuration or proxy.
 */
async function makeCodeCache(config, hostNode, bundleFile, dir) {
  const out = path.join(dir, SEA_ASSETS.codeCache);
  await rm(out, { force: true });
  const home = await mkdtemp(path.join(tmpdir(), 'docker-clair-code-cache-'));
  try {
    const env = { PATH: process.env.PATH ?? '', HOME: home, DOCKER_CONFIG: path.join(home, 'docker'),
      DOCKER_HOST: `unix://${path.join(home, 'no-daemon.sock')}` };
    const args = [...config.execArgv, path.join(ROOT, 'scripts', 'code-cache.cjs'), bundleFile, out,
      SEA_ASSETS.head, SEA_ASSETS.tail, SEA_ASSETS.bundle];
    const r = spawnSync(hostNode, args, { env, encoding: 'utf8', timeout: 60_000 });
    // The training scan must fail the way a scan fails without its daemon; anything else means it did not run the
    // start-up path, and the cache would hold little.
    if (r.status !== 2 || !/cannot reach the Docker daemon/.test(r.stderr ?? '')) {
      throw new Error(`code cache of the bundle: the training scan exited ${r.status ?? r.signal}, not 2 for an ` +
        `unreachable daemon:\n${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim()}`);
    }
    if (!(await stat(out)).size) throw new Error('code cache of the bundle: empty');
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  return out;
}

function stripTool(config, target) {
  if (!config.strip || target.startsWith('win-')) return undefined;
  // Only the host binary is stripped: the stripped result is smoke-tested below, and a cross
  // target cannot be run here.
  return target === config.hostTarget ? 'strip' : undefined;
}

/** Builds one target's executable from the blob. Returns { target, out, bytes, ms, skipped }. */
async function buildTarget(config, target, { bundleHash, getBlob, codeCache, force, log }) {
  const started = performance.now();
  const out = binaryPath(config, target);
  const runtime = await ensureRuntime(config, target, log);
  const strip = stripTool(config, target);
  const stampFile = path.join(path.dirname(config.bundle), 'sea', `${path.basename(out)}.stamp.json`);
  // The blob itself is not reproducible (the code cache differs run to run), so the stamp records
  // what goes into it instead.
  const inputs = {
    bundle: bundleHash,
    sea: seaSettings(config, codeCache),
    runtime: `${config.node}:${(await stat(runtime)).size}`,
    strip: strip ?? null,
    fuse: config.seaFuse,
    script: await sha256File(fileURLToPath(import.meta.url)),
  };
  if (!force && existsSync(out)) {
    try {
      const stamp = JSON.parse(await readFile(stampFile, 'utf8'));
      const st = await stat(out);
      if (JSON.stringify(stamp.inputs) === JSON.stringify(inputs) && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs) {
        // Mark the binary as checked now, so install-plugin's "older than its sources" test passes.
        const now = new Date();
        await utimes(out, now, now);
        await writeStamp(stampFile, inputs, out);
        return { target, out, bytes: st.size, ms: performance.now() - started, skipped: true };
      }
    } catch {
      // no or unreadable stamp: rebuild
    }
  }

  await mkdir(path.dirname(out), { recursive: true });
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.tmp-${process.pid}`);
  await rm(tmp, { force: true });
  try {
    const blob = await getBlob();
    if (strip) run(strip, ['-o', tmp, runtime], { what: `${strip} ${rel(runtime)}` });
    else await copyFile(runtime, tmp);
    await chmod(tmp, 0o755);
    const args = ['--no-install', 'postject', tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', config.seaFuse];
    if (target.startsWith('darwin-')) args.push('--macho-segment-name', 'NODE_SEA');
    const r = run('npx', args, { what: 'postject' });
    // postject prints harmless "Can't find string offset for section name '.note.100'" lines.
    const noise = /Can't find string offset for section name|^\s*$|^💉|Start injection|Injection done|signature seems corrupted/;
    const plain = `${r.stdout}${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
    for (const line of plain.split('\n')) if (!noise.test(line)) log(`postject ${line}`);
    if (target.startsWith('win-')) log(`note     ${target}: the Authenticode signature is now invalid; re-sign for release`);
    if (target === currentTarget()) smokeTest(tmp, rel(out));
    await rename(tmp, out);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }

  const st = await writeStamp(stampFile, inputs, out);
  return { target, out, bytes: st.size, ms: performance.now() - started, skipped: false };
}

async function writeStamp(stampFile, inputs, out) {
  const st = await stat(out);
  await mkdir(path.dirname(stampFile), { recursive: true });
  await writeFile(stampFile, `${JSON.stringify({ inputs, size: st.size, mtimeMs: st.mtimeMs }, null, 2)}\n`);
  return st;
}

/** Runs the fresh binary's metadata command in an empty environment, as the docker CLI would, then `version`. */
function smokeTest(file, label) {
  const r = spawnSync(file, ['docker-cli-plugin-metadata'], { env: {}, encoding: 'utf8', timeout: 30_000 });
  let meta;
  try {
    meta = JSON.parse(r.stdout);
  } catch {
    meta = undefined;
  }
  if (r.status !== 0 || meta?.SchemaVersion !== '0.1.0') {
    throw new Error(
      `smoke test failed: ${label} docker-cli-plugin-metadata exited ${r.status ?? r.signal}\n` +
        `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim(),
    );
  }
  if (r.stderr.trim()) throw new Error(`smoke test: ${label} docker-cli-plugin-metadata wrote to stderr:\n${r.stderr.trim()}`);
  // `version` runs the bundle, and fails if V8 rejected the code cache made for it.
  const v = spawnSync(file, ['version'], { env: { DOCKER_CLAIR_CHECK_CODE_CACHE: '1' }, encoding: 'utf8', timeout: 30_000 });
  if (v.status !== 0 || !/docker-clair/.test(v.stdout)) {
    throw new Error(`smoke test failed: ${label} version exited ${v.status ?? v.signal}\n` +
      `${v.stdout ?? ''}${v.stderr ?? ''}${v.error ? v.error.message : ''}`.trim());
  }
}

/**
 * Bundles and builds the requested targets (default: the host target).
 * Returns { bundle, results, ms }.
 */
export async function packageTargets({ targets, force = false, log = () => {} } = {}) {
  const started = performance.now();
  const config = await loadConfig();
  const here = currentTarget();
  if (here !== config.hostTarget) {
    throw new Error(
      `this machine is ${here}, but pkg.config.json says hostTarget is ${config.hostTarget}: the SEA blob must ` +
        `be made by a runtime that runs here`,
    );
  }
  targets ??= [config.hostTarget];
  for (const t of targets) {
    if (!config.targets.includes(t)) throw new Error(`target ${t} is not listed in pkg.config.json "targets"`);
  }
  const bundled = await bundle({ config, log });
  const hostNode = await ensureRuntime(config, config.hostTarget, log);
  const version = run(hostNode, ['--version'], { what: `${rel(hostNode)} --version` }).stdout.trim();
  if (version !== `v${config.node}`) throw new Error(`${rel(hostNode)} reports ${version}, expected v${config.node}`);

  const bundleHash = `${await sha256File(bundled.outfile)}+${await sha256File(bundled.launcher)}`;
  const blobs = new Map();
  const results = [];
  for (const target of targets) {
    // The code cache is specific to the platform that made it, so only the host target gets one.
    const codeCache = config.codeCache && target === config.hostTarget;
    const getBlob = async () => {
      if (!blobs.has(codeCache)) {
        const t0 = performance.now();
        const blob = await makeBlob(config, hostNode, bundled, codeCache);
        log(`blob     ${rel(blob)}  ${mb((await stat(blob)).size)}  code cache ${codeCache ? "on" : "off"}  ${(performance.now() - t0).toFixed(0)} ms`);
        blobs.set(codeCache, blob);
      }
      return blobs.get(codeCache);
    };
    const result = await buildTarget(config, target, { bundleHash, getBlob, codeCache, force, log });
    log(
      `${result.skipped ? 'current ' : 'built   '} ${rel(result.out)}  ${mb(result.bytes)}  ${target}` +
        `${codeCache ? ', code cache' : ''}${stripTool(config, target) ? ', stripped' : ''}` +
        `${result.skipped ? ' (inputs unchanged)' : `  ${secs(result.ms)}`}`,
    );
    results.push(result);
  }
  return { bundle: bundled, results, ms: performance.now() - started };
}

function parseArgs(argv) {
  const opts = { all: false, force: false, targets: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--all') opts.all = true;
    else if (a === '--force' || a === '-f') opts.force = true;
    else if (a === '--target' || a === '-t') opts.targets.push(argv[++i]);
    else if (a.startsWith('--target=')) opts.targets.push(a.slice('--target='.length));
    else if (a === '--help' || a === '-h') opts.help = true;
    else throw new Error(`unknown argument ${a} (use --all, --target <os-arch>, --force)`);
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    console.log('usage: node scripts/package.mjs [--all | --target <os-arch> ...] [--force]');
    return;
  }
  const config = await loadConfig();
  const targets = opts.all ? config.targets : opts.targets.length ? opts.targets : undefined;
  const { results, ms } = await packageTargets({ targets, force: opts.force, log: (l) => console.log(l) });
  const total = results.reduce((n, r) => n + r.bytes, 0);
  console.log(`done     ${results.length} executable(s), ${mb(total)} in total, ${secs(ms)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((error) => {
    console.error(`package: ${error.message ?? error}`);
    process.exitCode = 1;
  });
}
