#!/usr/bin/env node
// Bundles src/main.ts into one CommonJS file (build/docker-clair.cjs) for the Node SEA.
// Usage: node scripts/bundle.mjs            (npm run build)
// Also imported by package.mjs / install-plugin.mjs for `bundle()`, `loadConfig()` and `ROOT`.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const TARGET_RE = /^(linux|win|darwin)-(x64|arm64)$/;

/** Reads and checks pkg.config.json; relative paths are resolved against the project root. */
export async function loadConfig() {
  const file = path.join(ROOT, 'pkg.config.json');
  let raw;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${file}: ${error.message}`);
  }
  const need = (key, type) => {
    const value = raw[key];
    const ok = type === 'array' ? Array.isArray(value) && value.length > 0 : typeof value === type;
    if (!ok) throw new Error(`pkg.config.json: "${key}" must be a ${type === 'array' ? 'non-empty array' : type}`);
    return value;
  };
  const config = {
    entry: path.resolve(ROOT, need('entry', 'string')),
    name: need('name', 'string'),
    bundle: path.resolve(ROOT, need('bundle', 'string')),
    launcherEntry: path.resolve(ROOT, need('launcherEntry', 'string')),
    launcher: path.resolve(ROOT, need('launcher', 'string')),
    outDir: path.resolve(ROOT, need('outDir', 'string')),
    cacheDir: path.resolve(ROOT, need('cacheDir', 'string')),
    node: need('node', 'string'),
    hostTarget: need('hostTarget', 'string'),
    targets: need('targets', 'array'),
    codeCache: raw.codeCache !== false,
    strip: raw.strip !== false,
    stubDockerodeSession: raw.stubDockerodeSession === true,
    stubDockerModemSsh: raw.stubDockerModemSsh === true,
    stubGotHttp2: raw.stubGotHttp2 === true,
    minify: raw.minify ?? false,
    execArgv: Array.isArray(raw.execArgv) ? raw.execArgv : [],
    seaFuse: need('seaFuse', 'string'),
  };
  if (![true, false, 'whitespace'].includes(config.minify)) {
    throw new Error('pkg.config.json: "minify" must be true, false or "whitespace"');
  }
  if (!/^\d+\.\d+\.\d+$/.test(config.node)) throw new Error(`pkg.config.json: "node" must be x.y.z, got ${config.node}`);
  for (const t of [config.hostTarget, ...config.targets]) {
    if (!TARGET_RE.test(t)) throw new Error(`pkg.config.json: unknown target "${t}" (expected e.g. linux-x64)`);
  }
  if (!config.targets.includes(config.hostTarget)) {
    throw new Error(`pkg.config.json: hostTarget "${config.hostTarget}" is not listed in "targets"`);
  }
  return config;
}

/** Output path of the executable for a target: the host target gets the plain name. */
export function binaryPath(config, target) {
  const exe = target.startsWith('win-') ? '.exe' : '';
  const base = target === config.hostTarget ? config.name : `${config.name}-${target}`;
  return path.join(config.outDir, `${base}${exe}`);
}

/** Files whose change should trigger a rebuild of the binary (besides the embedded runtime). */
/**
 * How the executable carries the bundle (scripts/package.mjs) and how its launcher (src/sea-entry.ts, which gets
 * these at build time) finds and runs it: the SEA asset names, and the CommonJS wrapper the bundle is compiled in
 * (head + bundle + tail), the code cache's and the launcher's alike: V8 takes a cache only for the same source.
 */
export const SEA_ASSETS = {
  bundle: 'docker-clair.cjs',
  codeCache: 'docker-clair.cache',
  head: '(function (exports, require, module, __filename, __dirname) {',
  tail: '\n})',
};

export const SOURCE_PATHS = ['src', 'package.json', 'package-lock.json', 'pkg.config.json', 'scripts/bundle.mjs', 'scripts/package.mjs', 'scripts/code-cache.cjs'];

const rel = (p) => path.relative(ROOT, p).split(path.sep).join('/');

// A SEA's require() only loads built-ins. Native addons and optional packages that the code loads
// inside try/catch are replaced by a module that throws, so the callers take their fallbacks
// (ssh2: pure JS + wasm; debug: no colour detection). Each specifier gets its own stub module, so
// every one of them throws on its first require.
function seaStubPlugin({ stubDockerodeSession, stubDockerModemSsh, stubGotHttp2 }) {
  return {
    name: 'sea-stubs',
    setup(build) {
      build.onResolve({ filter: /^(cpu-features|supports-color)$|\.node$/ }, (args) => ({
        path: `${args.path} (from ${rel(args.importer || ROOT)})`,
        namespace: 'sea-stub',
      }));
      build.onLoad({ filter: /.*/, namespace: 'sea-stub' }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`${args.path}: not available in the docker-clair executable`)});\n`,
        loader: 'js',
      }));
      if (stubDockerModemSsh) {
        // docker-modem requires ./ssh (ssh2, which compiles a WebAssembly module with a 16 MiB memory when it
        // loads: ~19 MB of RSS) at the top of lib/modem.js, but calls it only for protocol "ssh". docker-clair
        // never gives the modem that protocol: ssh:// goes through the system ssh client (src/docker/ssh-dial-agent.ts).
        stubImport(build, {
          specifier: /^\.\/ssh(\.js)?$/, importer: /[\\/]node_modules[\\/]docker-modem[\\/]lib[\\/]modem\.js$/,
          path: 'docker-modem/lib/ssh', namespace: 'sea-stub-modem-ssh',
          contents:
            'module.exports = function ssh() {\n' +
            '  throw new Error("docker-modem\'s ssh2 transport is not in the docker-clair executable (ssh:// uses the system ssh client)");\n' +
            '};\n',
        });
      }
      if (stubGotHttp2) {
        // got imports http2-wrapper (and with it Node's http2, ~6 ms of every start) for its `http2` option, which
        // docker-clair never sets: Clair and registries are reached over HTTP/1.1.
        stubImport(build, {
          specifier: /^http2-wrapper$/, importer: /[\\/]node_modules[\\/]got[\\/]/,
          path: 'http2-wrapper', namespace: 'sea-stub-http2',
          contents:
            'const unsupported = () => { throw new Error("got\'s http2 option is not in the docker-clair executable"); };\n' +
            'export default { auto: unsupported, globalAgent: undefined };\n',
        });
      }
      if (stubDockerodeSession) {
        // dockerode requires ./session (gRPC + proto-loader + the .proto files) at the top of
        // lib/docker.js, but only buildImage({version: "2"}) (BuildKit) calls it. A scanner never builds.
        stubImport(build, {
          specifier: /^\.\/session(\.js)?$/, importer: /[\\/]node_modules[\\/]dockerode[\\/]lib[\\/]docker\.js$/,
          path: 'dockerode/lib/session', namespace: 'sea-stub-session',
          contents:
            'module.exports = function withSession(docker, auth, handler) {\n' +
            '  handler(new Error("BuildKit sessions (buildImage version 2) are not supported by docker-clair"));\n' +
            '};\n',
        });
      }
    },
  };
}

/** `specifier`, where a module matching `importer` imports it, becomes the module `contents` (named `path`). */
function stubImport(build, { specifier, importer, path: stubPath, namespace, contents }) {
  build.onResolve({ filter: specifier }, (args) => (importer.test(args.importer) ? { path: stubPath, namespace } : undefined));
  build.onLoad({ filter: /.*/, namespace }, () => ({ contents, loader: 'js' }));
}

// string-width's ES module versions (imported by yargs, cliui and wrap-ansi, each its own copy) build an
// Intl.Segmenter and Unicode-property regular expressions as they load: ~20 ms of every start, for a function only
// the help layout calls. Each such import gets a stand-in that loads the importer's own copy on its first call.
// (cli-table3 requires the CommonJS 4.x, which loads cheaply, and is left alone.)
function lazyStringWidthPlugin() {
  return {
    name: 'lazy-string-width',
    setup(build) {
      build.onResolve({ filter: /^string-width$/ }, async (args) => {
        if (args.kind !== 'import-statement' || args.pluginData?.lazyStringWidth) return undefined;
        const real = await build.resolve(args.path, {
          kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { lazyStringWidth: true },
        });
        if (real.errors.length) return { errors: real.errors };
        return { path: real.path, namespace: 'lazy-string-width' };
      });
      build.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
        contents:
          'let stringWidth;\n' +
          'export default function lazyStringWidth(string, options) {\n' +
          `  stringWidth ??= require(${JSON.stringify(args.path)}).default;\n` +
          '  return stringWidth(string, options);\n' +
          '}\n',
        loader: 'js',
        resolveDir: ROOT,
      }));
    },
  };
}

// @sindresorhus/is (got's type checks) builds two Intl.ListFormat objects as it loads, for the wording of a failed
// assertion. The first Intl object a process builds loads ICU's data, ~10 ms of every start; no scan uses Intl
// otherwise. So they are built on first use. The build fails if the module no longer reads as expected, so that a
// new version is looked at rather than silently slower.
function lazyListFormatPlugin() {
  const file = /[\\/]node_modules[\\/]@sindresorhus[\\/]is[\\/]distribution[\\/]index\.js$/;
  const construct = /\bnew Intl\.ListFormat\(/g;
  return {
    name: 'lazy-list-format',
    setup(build) {
      build.onLoad({ filter: file }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const found = source.match(construct)?.length ?? 0;
        if (found !== 2) {
          return { errors: [{ text: `${rel(args.path)}: expected 2 \`new Intl.ListFormat(\`, found ${found}; update lazyListFormatPlugin in scripts/bundle.mjs` }] };
        }
        const helper =
          'function lazyListFormat(...args) {\n' +
          '  let formatter;\n' +
          '  return { format: (list) => (formatter ??= new Intl.ListFormat(...args)).format(list) };\n' +
          '}\n';
        return { contents: helper + source.replace(construct, 'lazyListFormat('), loader: 'js' };
      });
    },
  };
}

/**
 * Bundles the entry into config.bundle. Returns { outfile, bytes, ms, version, inputs }.
 * `inputs` lists the bundled files (relative to the project root).
 */
export async function bundle({ config, log = () => {} } = {}) {
  config ??= await loadConfig();
  const { build } = await import('esbuild');
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
  const started = performance.now();
  const options = {
    absWorkingDir: ROOT,
    entryPoints: [config.entry],
    outfile: config.bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${config.node.split('.')[0]}`,
    // Licence comments are kept, collected at the end of the bundle.
    legalComments: 'eof',
    // ASCII source lets V8 keep the SEA's main script as a one-byte string.
    charset: 'ascii',
    // Even with the V8 code cache, startup grows with the script's size: whitespace-only
    // minification (names kept, semantics untouched) cut the metadata call by ~3 ms of ~32.
    minify: config.minify === true,
    minifyWhitespace: config.minify !== false,
    // Not embedded; lets a stack trace from the one-line bundle be mapped back to the sources.
    sourcemap: 'external',
    sourcesContent: false,
    metafile: true,
    logLevel: 'warning',
    define: {
      DOCKER_CLAIR_VERSION: JSON.stringify(pkg.version),
      // yargs 18 is ESM-only and calls fileURLToPath(import.meta.url) / createRequire(import.meta.url).
      'import.meta.url': '__importMetaUrl',
    },
    banner: {
      js: 'const __importMetaUrl = require("node:url").pathToFileURL(__filename).href;',
    },
    logOverride: {
      // yargs' `extends` support uses import.meta.resolve, which docker-clair never reaches.
      'empty-import-meta': 'silent',
    },
    plugins: [seaStubPlugin(config), lazyStringWidthPlugin(), lazyListFormatPlugin()],
  };
  const result = await build(options);
  // The executable's entry (src/sea-entry.ts): the metadata answer, and the loader of the bundle above.
  await build({
    ...options,
    define: { ...options.define, DOCKER_CLAIR_SEA_ASSETS: JSON.stringify(SEA_ASSETS) },
    entryPoints: [config.launcherEntry],
    outfile: config.launcher,
    sourcemap: false,
    metafile: false,
    banner: {},
    plugins: [],
  });
  const ms = performance.now() - started;
  const { size: bytes } = await stat(config.bundle);
  const inputs = Object.keys(result.metafile.inputs);
  log(`bundle   ${rel(config.bundle)}  ${(bytes / 1e6).toFixed(2)} MB  ${inputs.length} modules  ${ms.toFixed(0)} ms`);
  return { outfile: config.bundle, launcher: config.launcher, bytes, ms, version: pkg.version, inputs };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  bundle({ log: (line) => console.log(line) }).catch((error) => {
    console.error(`bundle: ${error.message ?? error}`);
    process.exitCode = 1;
  });
}
