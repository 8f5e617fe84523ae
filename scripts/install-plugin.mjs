#!/usr/bin/env node
// Installs the host executable as a docker CLI plugin:
//   ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-clair   (mode 0755, replaced atomically)
// Builds it first (npm run package) when it is missing or older than its sources.
//
//   npm run install-plugin [-- --force]     --force rebuilds even if the binary looks current
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, SOURCE_PATHS, binaryPath, loadConfig } from './bundle.mjs';
import { packageTargets } from './package.mjs';

const rel = (p) => path.relative(ROOT, p).split(path.sep).join('/');

/** Newest mtime (ms) among the files and directory trees listed, and which file it was. */
async function newestSource(entries) {
  let newest = { mtimeMs: 0, file: undefined };
  const visit = async (p) => {
    let st;
    try {
      st = await stat(p);
    } catch {
      return; // e.g. no package-lock.json
    }
    if (st.isDirectory()) {
      for (const name of await readdir(p)) await visit(path.join(p, name));
    } else if (st.mtimeMs > newest.mtimeMs) {
      newest = { mtimeMs: st.mtimeMs, file: p };
    }
  };
  for (const e of entries) await visit(path.join(ROOT, e));
  return newest;
}

/** The docker CLI's config dir: $DOCKER_CONFIG if non-empty, else ~/.docker. */
function dockerConfigDir() {
  const fromEnv = process.env.DOCKER_CONFIG;
  return fromEnv ? path.resolve(fromEnv) : path.join(os.homedir(), '.docker');
}

async function main() {
  const force = process.argv.includes('--force');
  const unknown = process.argv.slice(2).filter((a) => a !== '--force');
  if (unknown.length) throw new Error(`unknown argument ${unknown[0]} (only --force is accepted)`);

  const config = await loadConfig();
  const binary = binaryPath(config, config.hostTarget);
  const newest = await newestSource(SOURCE_PATHS);
  const current = existsSync(binary) ? (await stat(binary)).mtimeMs : 0;
  if (force || current < newest.mtimeMs) {
    const why = force ? '--force' : current === 0 ? `${rel(binary)} is missing` : `${rel(newest.file)} is newer than ${rel(binary)}`;
    console.log(`build    ${why}`);
    await packageTargets({ force, log: (line) => console.log(line) });
  }

  const dir = path.join(dockerConfigDir(), 'cli-plugins');
  const target = path.join(dir, config.name);
  await mkdir(dir, { recursive: true });
  // Copy under a temporary name in the same directory, then rename: a docker CLI running
  // concurrently sees either the old or the new plugin, never a half-written file.
  const tmp = path.join(dir, `.${config.name}.tmp-${process.pid}`);
  try {
    await copyFile(binary, tmp);
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  } catch (error) {
    await rm(tmp, { force: true });
    throw new Error(`cannot install into ${dir}: ${error.message}`);
  }
  const { size } = await stat(target);
  console.log(`installed ${rel(binary)} (${(size / 1e6).toFixed(1)} MB) -> ${target}`);

  await warnIfShadowed(target);
  const cmd = process.env.DOCKER_CONFIG ? `DOCKER_CONFIG=${process.env.DOCKER_CONFIG} docker` : 'docker';
  console.log(`try:     ${cmd} clair --help`);
}

/**
 * The CLI searches config.json's cliPluginsExtraDirs before <config>/cli-plugins
 * (docker/cli cli-plugins/manager/manager.go getPluginDirs).
 */
async function warnIfShadowed(installed) {
  let extraDirs = [];
  try {
    const cfg = JSON.parse(await readFile(path.join(dockerConfigDir(), 'config.json'), 'utf8'));
    if (Array.isArray(cfg.cliPluginsExtraDirs)) extraDirs = cfg.cliPluginsExtraDirs;
  } catch {
    return;
  }
  for (const d of extraDirs) {
    const other = path.join(d, path.basename(installed));
    if (existsSync(other)) console.warn(`warning: ${other} (cliPluginsExtraDirs) takes precedence over ${installed}`);
  }
}

main().catch((error) => {
  console.error(`install-plugin: ${error.message ?? error}`);
  process.exitCode = 1;
});
