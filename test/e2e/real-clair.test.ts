// End to end against the real Clair v4.9 (scripts/real-clair.sh: built from source, a private PostgreSQL, no
// updaters): the installed plugin run by the docker CLI, on every test engine's save format. The findings expected
// are computed from the made-up advisories the suite imports (test/helpers/vuln-file.ts) and the packages
// `dpkg-query -W` lists in each image, never from a recorded output. The Clair double stays for what the real Clair
// cannot show (faults, timing, the legacy v1 API).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';
import { isImageExport, startDockerProxy, targetOf, type DockerProxy } from '../helpers/docker-proxy.js';
import { imageFacts, testEngines, type TestEngine } from '../helpers/engines.js';
import {
  assertNothingWritten, describeRun, installPlugin, launch, parseReport, stderrLines, tracedDockerScan,
  type Finished, type InstalledPlugin, type JsonImage,
} from '../helpers/plugin-run.js';
import { connectOutcome } from '../helpers/ports.js';
import { alive } from '../helpers/process-alive.js';
import { startRealClair, type RealClair } from '../helpers/real-clair.js';
import { registryAvailable, startRegistry, type Registry } from '../helpers/registry.js';
import { assertValidJunit, assertValidSarif, junitConsumerCounts } from '../helpers/report-formats.js';
import { straceAvailable } from '../helpers/strace.js';
import { affectedBy, advisoriesFor, installedPackages, writeVulnFile, type Advisory, type InstalledPackage } from '../helpers/vuln-file.js';
import { until } from '../helpers/wait.js';

const TIMEOUT = 240_000;

let plugin: InstalledPlugin;
let vulnFile = '';
let advisories: Advisory[] = [];
const packages = new Map<string, InstalledPackage[]>();
const clairs: RealClair[] = [];

before(async () => {
  plugin = installPlugin('docker-clair-real-clair-');
  for (const image of [TEST_IMAGES.debian12, TEST_IMAGES.multilayer]) packages.set(image, installedPackages(image));
  vulnFile = path.join(plugin.scratch, 'vulns.jsonl.gz');
  ({ advisories } = writeVulnFile(vulnFile, packagesOf(TEST_IMAGES.debian12)));
});

after(async () => {
  await Promise.allSettled(clairs.map((c) => c.down()));
  plugin?.remove();
});

function packagesOf(image: string): InstalledPackage[] {
  const list = packages.get(image);
  assert.ok(list, `no package list for ${image}`);
  return list;
}

async function realClair(options: { psk?: string; loaded?: boolean } = {}): Promise<RealClair> {
  const clair = await startRealClair(options.psk ? { psk: options.psk } : {});
  clairs.push(clair);
  if (options.loaded ?? true) await clair.importFile(vulnFile);
  return clair;
}

/** `docker --config <tmp> -H HOST clair scan ARGS`. */
function scan(host: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Finished> {
  return launch('docker', scanArgs(host, args), { cwd: plugin.scratch, ...(env ? { env } : {}) }).done;
}

function scanArgs(host: string, args: string[]): string[] {
  return ['--config', plugin.config, '-H', host, 'clair', 'scan', ...args];
}

/** What the advisories make of an image: the ids, and for each matching package its severity and fix. */
function expectedFindings(image: string): { ids: string[]; rows: string[] } {
  const rows: string[] = [];
  for (const a of advisories) {
    for (const p of affectedBy(a, packagesOf(image))) rows.push(row(a.id, a.severity, p.name, p.version, a.fixedIn || null));
  }
  const ids = [...new Set(rows.map((r) => r.split(' ')[0] as string))].sort();
  return { ids, rows: rows.sort() };
}

function row(id: string, severity: string, pkg: string, version: string, fixedIn: string | null): string {
  return `${id} ${severity} ${pkg} ${version} fixed:${fixedIn ?? '-'}`;
}

function foundRows(image: JsonImage): string[] {
  return image.vulnerabilities.map((v) => row(v.id, v.severity, v.package.name, v.package.version, v.fixedIn)).sort();
}

function onlyImage(r: Finished): JsonImage {
  const report = parseReport(r.stdout, r);
  assert.equal(report.images.length, 1, describeRun(r));
  return report.images[0] as JsonImage;
}

describe('scripts/real-clair.sh', () => {
  it('the test advisories cover every severity, fixed and unfixed, and four that must not match', () => {
    const matching = advisories.filter((a) => affectedBy(a, packagesOf(TEST_IMAGES.debian12)).length > 0);
    assert.deepEqual([...new Set(matching.map((a) => a.severity))].sort(), ['Critical', 'High', 'Low', 'Medium', 'Negligible', 'Unknown']);
    assert.ok(matching.some((a) => a.fixedIn === '') && matching.some((a) => a.fixedIn !== ''));
    const notMatching = advisories.filter((a) => !matching.includes(a)).map((a) => a.why).sort();
    assert.deepEqual(notMatching, ['Debian: this release not affected', 'another Debian release', 'fixed before the installed version', 'package not in the image']);
    assert.deepEqual(advisoriesFor(packagesOf(TEST_IMAGES.debian12)).map((a) => a.id), advisories.map((a) => a.id));
  });

  it('up prints one CLAIR_ADDR whose index_state answers 200; down leaves no listener and no process', { timeout: TIMEOUT }, async () => {
    const clair = await startRealClair();
    const res = await fetch(`${clair.url}/indexer/api/v1/index_state`);
    assert.equal(res.status, 200);
    assert.match(((await res.json()) as { state: string }).state, /\S/);
    const pid = clair.pid();
    const postgres = instancePids(clair.state);
    assert.ok(postgres.length > 0, 'PostgreSQL runs from the instance state');
    await clair.down();
    assert.equal(await connectOutcome(Number(new URL(clair.url).port)), 'ECONNREFUSED');
    assert.equal(alive(pid), false, `Clair (pid ${pid}) still runs`);
    assert.deepEqual(instancePids(clair.state), [], 'no PostgreSQL process of the instance is left');
  });
});

describe('the real Clair before and after the import', () => {
  let clair: RealClair;
  before(async () => {
    clair = await realClair({ loaded: false });
  });

  it('before any import: exit 3, untrusted, with the distribution and every dpkg package indexed', { timeout: TIMEOUT }, async () => {
    const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
    assert.equal(r.code, 3, describeRun(r));
    const image = onlyImage(r);
    assert.equal(image.verdict, 'untrusted');
    assert.match(image.reason, /database is empty/);
    assert.deepEqual(image.vulnerabilities, []);
    assert.equal(image.packageCount, packagesOf(TEST_IMAGES.debian12).length);
    assert.equal(image.distribution?.id, 'debian');
  });

  it('after importing the test file: exit 1 with exactly the ids it makes affecting; packageCount = dpkg-query -W', { timeout: TIMEOUT }, async () => {
    await clair.importFile(vulnFile);
    const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
    assert.equal(r.code, 1, describeRun(r));
    const image = onlyImage(r);
    const expected = expectedFindings(TEST_IMAGES.debian12);
    assert.deepEqual([...new Set(image.vulnerabilities.map((v) => v.id))].sort(), expected.ids);
    assert.deepEqual(foundRows(image), expected.rows);
    assert.equal(image.packageCount, packagesOf(TEST_IMAGES.debian12).length);
  });

  it('every format in one run: table on stdout, JSON, JUnit and SARIF files, all with the same findings', { timeout: TIMEOUT }, async () => {
    const dir = path.join(plugin.scratch, `formats-${randomBytes(4).toString('hex')}`);
    mkdirSync(dir);
    const out = (f: string) => path.join(dir, `report.${f}`);
    const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--format', 'table', '--format', `json=${out('json')}`,
      '--format', `junit=${out('xml')}`, '--format', `sarif=${out('sarif')}`, TEST_IMAGES.debian12]);
    assert.equal(r.code, 1, describeRun(r));
    const expected = expectedFindings(TEST_IMAGES.debian12);
    for (const id of expected.ids) assert.ok(r.stdout.includes(id), `the table lacks ${id}:\n${r.stdout}`);
    assert.match(r.stdout, /Debian GNU\/Linux 12 \(bookworm\)/);
    const json = parseReport(readFileSync(out('json'), 'utf8')).images[0] as JsonImage;
    assert.deepEqual(foundRows(json), expected.rows);
    const xml = readFileSync(out('xml'), 'utf8');
    await assertValidJunit(xml);
    const counts = await junitConsumerCounts(xml);
    assert.ok(counts.failures > 0, `JUnit shows the failing findings: ${JSON.stringify(counts)}`);
    for (const id of expected.ids) assert.ok(xml.includes(id), `JUnit lacks ${id}`);
    const sarif = assertValidSarif(readFileSync(out('sarif'), 'utf8'));
    const ruleIds = new Set((sarif.runs[0].results as { ruleId: string }[]).map((x) => x.ruleId));
    assert.deepEqual([...ruleIds].sort(), expected.ids);
  });

  it('exit codes follow --fail-on, the ignore file and --ignore-unfixed', { timeout: TIMEOUT }, async () => {
    const base = ['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12];
    const critical = advisories.filter((a) => a.severity === 'Critical' && affectedBy(a, packagesOf(TEST_IMAGES.debian12)).length > 0);
    assert.equal(critical.length, 1);
    const ignoreFile = path.join(plugin.scratch, 'ignore-critical');
    writeFileSync(ignoreFile, `${critical[0]?.id}\n`);
    const cases: [string[], number][] = [
      [['--fail-on', 'none'], 0],
      [['--fail-on', 'critical'], 1],
      [['--fail-on', 'critical', '--ignore-file', ignoreFile], 0],
      // The only affecting High advisory is unfixed: ignored with --ignore-unfixed, so only Medium and below remain.
      [['--fail-on', 'high', '--ignore-file', ignoreFile, '--ignore-unfixed'], 0],
      [['--fail-on', 'medium', '--ignore-file', ignoreFile, '--ignore-unfixed'], 1],
    ];
    for (const [extra, code] of cases) {
      const r = await scan(TEST_DOCKER_HOST, [...extra, ...base]);
      assert.equal(r.code, code, `${extra.join(' ')}\n${describeRun(r)}`);
      assert.equal(onlyImage(r).verdict, code === 0 ? 'pass' : 'fail');
    }
  });

  it('the API probe finds v4 and the preflight probe layer is fetched by the real Clair', { timeout: TIMEOUT }, async () => {
    const r = await scan(TEST_DOCKER_HOST, ['-D', '--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer]);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stderr, /Clair API: v4 \(GET .*index_state answered 200\)/);
    assert.match(r.stderr, /preflight: Clair fetched a probe layer from http:\/\/127\.0\.0\.1:\d+/);
  });

  it('a layer address Clair cannot reach: exit 2, one line naming it and the fix, no export', { timeout: TIMEOUT }, async () => {
    const proxy = await startDockerProxy(targetOf(TEST_DOCKER_HOST));
    try {
      // 192.0.2.0/24 is TEST-NET-1: nothing answers there.
      const fresh = await realClair({ loaded: false });
      const r = await scan(proxy.host, ['--clair', fresh.url, '--no-progress', '--layer-address', '192.0.2.1', TEST_IMAGES.debian12]);
      assert.equal(r.code, 2, describeRun(r));
      assert.equal(r.stdout, '');
      const lines = stderrLines(r);
      assert.equal(lines.length, 1, describeRun(r));
      assert.match(lines[0] ?? '', /^docker-clair: Clair cannot fetch layers from the layer server at http:\/\/192\.0\.2\.1:\d+ .*--layer-address/);
      assert.deepEqual(proxy.requests.filter(isImageExport), []);
    } finally {
      await proxy.close();
    }
  });
});

describe('images without an operating system on the real Clair: exit 3', () => {
  let clair: RealClair;
  const made: string[] = [];
  before(async () => {
    clair = await realClair();
  });
  after(() => {
    for (const image of made) dockerCli(['image', 'rm', '-f', image]);
  });

  /** `docker import` of a tar holding the given files of debian12 (or a plain text file), as a one-layer image. */
  function importImage(name: string, files: string[]): string {
    const tag = `docker-clair-test/${name}-${randomBytes(4).toString('hex')}:latest`;
    const container = dockerCli(['create', TEST_IMAGES.debian12]);
    try {
      const dir = path.join(plugin.scratch, `rootfs-${name}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'README'), 'no operating system here\n');
      for (const f of files) {
        mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
        dockerCli(['cp', `${container}:/${f}`, path.join(dir, f)]);
      }
      runText('tar', ['-C', dir, '-cf', `${dir}.tar`, '.'], true);
      dockerCli(['import', `${dir}.tar`, tag]);
    } finally {
      dockerCli(['rm', container]);
    }
    made.push(tag);
    return tag;
  }

  it('nothing but a text file: no packages, exit 3', { timeout: TIMEOUT }, async () => {
    const image = importImage('no-os', []);
    const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--format', 'json', image]);
    assert.equal(r.code, 3, describeRun(r));
    const scanned = onlyImage(r);
    assert.equal(scanned.verdict, 'untrusted');
    assert.equal(scanned.packageCount, 0);
    assert.match(scanned.reason, /no packages/);
  });

  it("Debian's dpkg database without an os-release: packages but no OS, exit 3", { timeout: TIMEOUT }, async () => {
    // claircore takes a directory for a dpkg database only when it holds both `status` and `info/`.
    const image = importImage('dpkg-only', ['var/lib/dpkg/status', 'var/lib/dpkg/info']);
    const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--format', 'json', image]);
    assert.equal(r.code, 3, describeRun(r));
    const scanned = onlyImage(r);
    assert.equal(scanned.verdict, 'untrusted');
    assert.equal(scanned.packageCount, packagesOf(TEST_IMAGES.debian12).length);
    assert.equal(scanned.distribution, null);
    assert.match(scanned.reason, /recognised no operating system/);
  });
});

describe('PSK authentication on the real Clair', () => {
  const key = randomBytes(32).toString('base64');
  let clair: RealClair;
  before(async () => {
    clair = await realClair({ psk: key });
  });

  it('with the key in CLAIR_PSK: the scan works (exit 1)', { timeout: TIMEOUT }, async () => {
    const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12], { CLAIR_PSK: key });
    assert.equal(r.code, 1, describeRun(r));
    assert.deepEqual([...new Set(onlyImage(r).vulnerabilities.map((v) => v.id))].sort(), expectedFindings(TEST_IMAGES.debian12).ids);
  });

  for (const [what, env] of [['without a key', {}], ['with another key', { CLAIR_PSK: randomBytes(32).toString('base64') }]] as const) {
    it(`${what}: exit 2, one line saying Clair refused the credentials`, { timeout: TIMEOUT }, async () => {
      const r = await scan(TEST_DOCKER_HOST, ['--clair', clair.url, '--no-progress', TEST_IMAGES.debian12], env);
      assert.equal(r.code, 2, describeRun(r));
      assert.equal(r.stdout, '');
      const lines = stderrLines(r);
      assert.equal(lines.length, 1, describeRun(r));
      assert.match(lines[0] ?? '', /^docker-clair: .*(401|PSK|auth)/i);
      assert.ok(!r.stderr.includes(key), 'the key never reaches the output');
    });
  }
});

describe('the real Clair stopped mid-scan', () => {
  it('killed once the export has begun: exit 2, one line naming Clair, no report', { timeout: TIMEOUT }, async () => {
    const clair = await realClair({ loaded: false });
    const proxy = await startDockerProxy(targetOf(TEST_DOCKER_HOST));
    try {
      const launched = launch('docker', scanArgs(proxy.host, ['--clair', clair.url, '--no-progress', '--format', 'json', TEST_IMAGES.multilayer]),
        { cwd: plugin.scratch });
      await Promise.race([
        until('the export request', () => proxy.requests.some(isImageExport) || undefined, { timeoutMs: 120_000 }),
        launched.done.then((r) => assert.fail(`the scan ended before its export:\n${describeRun(r)}`)),
      ]);
      process.kill(clair.pid(), 'SIGKILL');
      const r = await launched.done;
      assert.equal(r.code, 2, describeRun(r));
      assert.equal(r.stdout, '', 'no report');
      const lines = stderrLines(r);
      assert.equal(lines.length, 1, describeRun(r));
      assert.match(lines[0] ?? '', /^docker-clair: .*Clair/);
      assert.ok(lines[0]?.includes(new URL(clair.url).host), `the error names Clair's address:\n${describeRun(r)}`);
    } finally {
      await proxy.close();
    }
  });
});

describe('the real Clair fetching from a token-auth registry', { skip: !registryAvailable() && 'docker-registry is not installed' }, () => {
  let clair: RealClair;
  let registry: Registry;
  let proxy: DockerProxy;
  let ref = '';
  before(async () => {
    clair = await realClair();
    registry = await startRegistry({ auth: { kind: 'token', users: { ci: 'real-clair-pw' } } });
    ref = await registry.push(TEST_IMAGES.multilayer, 'team/app', '1');
    proxy = await startDockerProxy(targetOf(TEST_DOCKER_HOST));
    // The docker CLI hands its --config to the plugin: the credentials go where `docker login` would put them.
    const file = path.join(plugin.config, 'config.json');
    const config = (() => {
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch {
        return {};
      }
    })();
    writeFileSync(file, JSON.stringify({ ...config, auths: { [registry.host]: { auth: Buffer.from('ci:real-clair-pw').toString('base64') } } }));
  });
  after(async () => {
    await proxy?.close();
    await registry?.close();
  });

  it('--image-src remote: the expected findings of multilayer, no export; Clair fetched the blobs with a pull token', { timeout: TIMEOUT }, async () => {
    const mark = proxy.requests.length;
    const tokensBefore = registry.tokenRequests.length;
    const r = await scan(proxy.host, ['--clair', clair.url, '--format', 'json', '--image-src', 'remote', ref]);
    assert.equal(r.code, 1, describeRun(r));
    const image = onlyImage(r);
    assert.deepEqual(foundRows(image), expectedFindings(TEST_IMAGES.multilayer).rows);
    assert.equal(image.packageCount, packagesOf(TEST_IMAGES.multilayer).length);
    assert.equal(image.image.id, imageFacts(testEngines()[0] as TestEngine, TEST_IMAGES.multilayer).id, 'the config digest');
    assert.deepEqual(proxy.since(mark), [], '--image-src remote does not even ask the daemon');
    // The plugin asked for one pull token with the password; Clair fetched with tokens, never with the password.
    const asked = registry.tokenRequests.slice(tokensBefore);
    assert.deepEqual(asked.map((t) => [t.credential, t.scopes]), [['basic', ['repository:team/app:pull']]]);
    const clairLog = readFileSync(path.join(clair.state, 'clair.log'), 'utf8');
    assert.doesNotMatch(clairLog, /real-clair-pw/);
  });
});

for (const engine of testEngines()) {
  describe(`the real Clair on ${engine.label}: findings, warm rescans, zero disk`, () => {
    let clair: RealClair;
    let proxy: DockerProxy;
    before(async () => {
      clair = await realClair();
      proxy = await startDockerProxy(targetOf(engine.host));
    });
    after(() => proxy?.close());

    it('cold scan of debian12: exactly the expected findings, each in the image layer, one export', { timeout: TIMEOUT }, async () => {
      const mark = proxy.requests.length;
      const r = await scan(proxy.host, ['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
      assert.equal(r.code, 1, describeRun(r));
      const image = onlyImage(r);
      assert.equal(image.image.id, imageFacts(engine, TEST_IMAGES.debian12).id);
      assert.deepEqual(foundRows(image), expectedFindings(TEST_IMAGES.debian12).rows);
      const layer = imageFacts(engine, TEST_IMAGES.debian12).diffIds[0];
      assert.deepEqual([...new Set(image.vulnerabilities.map((v) => v.layer))], [layer]);
      assert.equal(image.packageCount, packagesOf(TEST_IMAGES.debian12).length);
      assert.equal(proxy.since(mark).filter(isImageExport).length, 1);
    });

    it('warm rescan: the same findings and no export', { timeout: TIMEOUT }, async () => {
      const mark = proxy.requests.length;
      const r = await scan(proxy.host, ['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
      assert.equal(r.code, 1, describeRun(r));
      assert.deepEqual(foundRows(onlyImage(r)), expectedFindings(TEST_IMAGES.debian12).rows);
      assert.ok(proxy.since(mark).length > 0, 'the plugin talked to the daemon');
      assert.deepEqual(proxy.since(mark).filter(isImageExport), []);
    });

    it('cold scan of multilayer under strace: its own packages matched, one export, nothing written', { timeout: TIMEOUT }, async () => {
      assert.ok(straceAvailable(), 'strace is needed: apt-get install strace (.ci/run installs it)');
      const mark = proxy.requests.length;
      const t = await tracedDockerScan(plugin, scanArgs(proxy.host, ['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer]));
      assert.equal(t.run.code, 1, describeRun(t.run));
      const image = onlyImage(t.run);
      assert.deepEqual(foundRows(image), expectedFindings(TEST_IMAGES.multilayer).rows);
      assert.equal(image.packageCount, packagesOf(TEST_IMAGES.multilayer).length);
      assert.equal(proxy.since(mark).filter(isImageExport).length, 1);
      assertNothingWritten(t);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------------

/** Processes whose command line names the instance's state directory (its PostgreSQL). */
function instancePids(state: string): number[] {
  return runText('pgrep', ['-f', state]).split('\n').filter(Boolean).map(Number);
}

function runText(cmd: string, args: string[], check = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (check && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}
