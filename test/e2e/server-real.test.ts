// End to end with the real Clair: the packaged plugin, installed into a temporary DOCKER_CONFIG and run by the real
// docker CLI, brings up the managed Clair from docker-clair-test/clair-real (Clair v4.9.0 built from source, with
// the official image's interface) and docker-clair-test/postgres, air-gapped as Clair documents it for disconnected
// machines: updaters off, data loaded from a `clairctl export-updaters` file (made-up Debian 12 advisories,
// test/helpers/vuln-file.ts) with `clairctl import-updaters` inside the Clair container. Then a scan without
// --clair, across the managed bridge network, must give exactly the advisories the file says match.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';
import { holdManagedServer } from '../helpers/managed-lock.js';
import { leftovers, NAMES, removeEverything } from '../helpers/managed-objects.js';
import { describeRun, installPlugin, launch, parseReport, type Finished, type InstalledPlugin } from '../helpers/plugin-run.js';
import { connectOutcome, freePort } from '../helpers/ports.js';
import { installedPackages, writeVulnFile } from '../helpers/vuln-file.js';

const CLAIR_IMAGE = 'docker-clair-test/clair-real:latest';
const POSTGRES_IMAGE = 'docker-clair-test/postgres:latest';
const TIMEOUT = 300_000;

let plugin: InstalledPlugin | undefined;
let release: (() => void) | undefined;

function dockerClair(args: string[]): Promise<Finished> {
  if (!plugin) throw new Error('the plugin is not installed');
  return launch('docker', ['--config', plugin.config, '-H', TEST_DOCKER_HOST, 'clair', ...args], { cwd: plugin.scratch }).done;
}

const up = (port: number, ...extra: string[]) =>
  dockerClair(['server', 'up', '--clair-image', CLAIR_IMAGE, '--postgres-image', POSTGRES_IMAGE, '--port', String(port), ...extra]);

/** What the import left in the Clair container's temp directory (nothing, ever). */
function tempFilesInClair(): string {
  return dockerCli(['exec', NAMES.clair, 'ls', '-A', '/tmp']);
}

before(async () => {
  for (const image of [CLAIR_IMAGE, POSTGRES_IMAGE, TEST_IMAGES.debian12]) {
    assert.ok(dockerCli(['image', 'ls', '-q', image]), `${image} is missing: run \`npm run test-images\` (npm test does)`);
  }
  release = await holdManagedServer();
  plugin = installPlugin('docker-clair-server-real-e2e-');
  // A previous run that died half-way must not make this one pass or fail.
  removeEverything();
}, { timeout: 1_800_000 });

after(() => {
  removeEverything();
  plugin?.remove();
  release?.();
});

describe('managed real Clair, air-gapped: up --import, status, scan without --clair, import, down', { timeout: TIMEOUT }, () => {
  let port = 0;
  let updates = '';
  let expected: string[] = [];
  let dpkgLines = 0;
  /** When `up --import` returned: the imported data is at least as old as the time since. */
  let importedBy = 0;
  let firstUpdate = '';

  before(() => {
    if (!plugin) throw new Error('the plugin is not installed');
    updates = path.join(plugin.scratch, 'debian12-updates.jsonl.gz');
    ({ expected } = writeVulnFile(updates, installedPackages(TEST_IMAGES.debian12, TEST_DOCKER_HOST)));
    assert.ok(expected.length > 0);
    dpkgLines = dockerCli(['run', '--rm', '--network', 'none', '--entrypoint', 'dpkg-query', TEST_IMAGES.debian12, '-W']).split('\n').length;
  });

  it('up --import: the real Clair, updaters off, loads the file and returns once it is imported', async () => {
    port = await freePort();
    const run = await up(port, '--import', updates);
    importedBy = Date.now();
    assert.equal(run.code, 0, describeRun(run));
    assert.match(run.stdout, new RegExp(`^Clair started at http://127\\.0\\.0\\.1:${port} \\(air-gapped: updaters off\\); imported ${updates.replace(/[.]/g, '\\.')}; ` +
      'vulnerability database loaded \\(1 updater\\(s\\), last update \\d{4}-'));
    assert.match(run.stderr, /^importing it with clairctl import-updaters/m);
    assert.doesNotMatch(run.stderr, /waiting for Clair's first vulnerability update/, 'no updater run is waited for');
    assert.equal(dockerCli(['inspect', '-f', '{{index .Config.Labels "io.github.docker-clair.air-gapped"}}', NAMES.clair]), 'true');
    const config = dockerCli(['exec', NAMES.clair, 'cat', '/config/config.yaml']);
    assert.match(config, /disable_updaters: true/);
    assert.match(config, /repo2cpe_mapping_file: \/config\/empty-mapping\.json/);
    assert.equal(dockerCli(['exec', NAMES.clair, 'cat', '/config/empty-mapping.json']), '{"data":{}}');
    assert.equal(tempFilesInClair(), '', 'the copy of the file is removed after the import');
    // The real Clair, as its image says, running as nobody.
    assert.equal(dockerCli(['exec', NAMES.clair, 'id', '-un']), 'nobody');
  });

  it('status: ready, air-gapped, and how old the imported data is', async () => {
    const text = await dockerClair(['server', 'status']);
    assert.equal(text.code, 0, describeRun(text));
    assert.match(text.stdout, /^Clair: +running +docker-clair-server +docker-clair-test\/clair-real:latest +\(version 4\.9\.0\)$/m);
    assert.match(text.stdout, /^Updaters: +off \(air-gapped: load data with "docker clair server import FILE"\)$/m);
    assert.match(text.stdout, /^Database: +1 updater\(s\), last update \d{4}-\S+ \(\d+ (ms|s|min) old\)$/m);
    const json = await dockerClair(['server', 'status', '--format', 'json']);
    assert.equal(json.code, 0, describeRun(json));
    const status = JSON.parse(json.stdout) as { ready: boolean; airGapped: boolean; database: { empty: boolean; updaters: number; lastUpdate: string; ageSeconds: number } };
    assert.equal(status.ready, true);
    assert.equal(status.airGapped, true);
    assert.equal(status.database.updaters, 1);
    assert.ok(status.database.ageSeconds >= 0 && status.database.ageSeconds < 3600, String(status.database.ageSeconds));
    firstUpdate = status.database.lastUpdate;
  });

  it('scan without --clair: the real Clair fetches across the bridge network; exactly the advisories that match', async () => {
    const run = await dockerClair(['-D', 'scan', '--format', 'json', '--no-progress', TEST_IMAGES.debian12]);
    assert.equal(run.code, 1, describeRun(run));
    const gateway = /layer server on http:\/\/(\d+\.\d+\.\d+\.\d+):\d+ \(the managed Clair's network gateway\)/.exec(run.stderr)?.[1];
    assert.equal(gateway, dockerCli(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', NAMES.network]));
    const image = parseReport(run.stdout, run).images[0];
    assert.equal(image?.verdict, 'fail');
    assert.deepEqual([...new Set(image?.vulnerabilities.map((v) => v.id))].sort(), expected);
    assert.equal(image?.packageCount, dpkgLines, 'every package dpkg-query -W lists');
    assert.equal(image?.distribution?.id, 'debian');
    assert.doesNotMatch(run.stderr, /^warning: .*--max-db-age/m, 'data imported minutes ago is within the default 7 days');
  });

  it('--max-db-age below the data\'s known age: one warning on stderr, the same verdict; 0 never warns', async () => {
    // The data was stored before `up` returned, so it is older than the time since then.
    const knownAge = Date.now() - importedBy;
    assert.ok(knownAge >= 1);
    const stale = await dockerClair(['scan', '--format', 'json', '--no-progress', '--max-db-age', `${knownAge}ms`, TEST_IMAGES.debian12]);
    assert.equal(stale.code, 1, describeRun(stale));
    const warnings = stale.stderr.split('\n').filter((l) => l.startsWith('warning: '));
    assert.equal(warnings.length, 1, stale.stderr);
    assert.match(warnings[0] ?? '', /^warning: Clair's vulnerability data is \d+ (ms|s|min) old \(last update \d{4}-\S+\), older than --max-db-age \d+ (ms|s|min): /);
    assert.deepEqual([...new Set(parseReport(stale.stdout, stale).images[0]?.vulnerabilities.map((v) => v.id))].sort(), expected);
    const off = await dockerClair(['scan', '--no-progress', '--max-db-age', '0', TEST_IMAGES.debian12]);
    assert.equal(off.code, 1, describeRun(off));
    assert.doesNotMatch(off.stderr, /^warning:/m);
  });

  it('server import: a fresh export refreshes the data of the running server', async () => {
    const refresh = path.join(plugin!.scratch, 'refresh.jsonl.gz');
    writeVulnFile(refresh, installedPackages(TEST_IMAGES.debian12, TEST_DOCKER_HOST));
    const run = await dockerClair(['server', 'import', refresh]);
    assert.equal(run.code, 0, describeRun(run));
    const last = /^imported .*; vulnerability database: 1 updater\(s\), last update (\S+)$/m.exec(run.stdout)?.[1];
    assert.ok(last, run.stdout);
    assert.ok(Date.parse(last) > Date.parse(firstUpdate), `${last} is newer than ${firstUpdate}`);
    assert.equal(tempFilesInClair(), '');
  });

  it('server import errors: one line, exit 2, nothing left in the container', async () => {
    const garbage = path.join(plugin!.scratch, 'not-an-export.json');
    writeFileSync(garbage, 'this is not what clairctl export-updaters writes\n');
    const bad = await dockerClair(['server', 'import', garbage]);
    assert.equal(bad.code, 2, describeRun(bad));
    assert.match(bad.stderr, /^docker-clair: clairctl import-updaters could not load .*not-an-export\.json \(exit code 1\): .+; hint: give the file "clairctl export-updaters" wrote/m);
    assert.equal(bad.stderr.split('\n').filter((l) => l.startsWith('docker-clair:')).length, 1, bad.stderr);
    assert.equal(tempFilesInClair(), '', 'the copy is removed after a failed import too');

    const missing = await dockerClair(['server', 'import', path.join(plugin!.scratch, 'nope.jsonl.gz')]);
    assert.equal(missing.code, 2, describeRun(missing));
    assert.match(missing.stderr, /^docker-clair: cannot read the vulnerability data file .*nope\.jsonl\.gz: no such file; hint: /m);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    // The server still serves what it had.
    const status = await dockerClair(['server', 'status']);
    assert.equal(status.code, 0, describeRun(status));
  });

  it('a later up keeps it air-gapped: stopped, then started again with the offline config', async () => {
    dockerCli(['stop', '-t', '5', NAMES.clair]);
    const run = await up(port);
    assert.equal(run.code, 0, describeRun(run));
    assert.match(run.stdout, /^Clair started again at http:\/\/127\.0\.0\.1:\d+ \(air-gapped: updaters off\); vulnerability database loaded \(1 updater\(s\)/);
    assert.match(dockerCli(['exec', NAMES.clair, 'cat', '/config/config.yaml']), /disable_updaters: true/);
  });

  it('server down: no container, network or listener left, the volume kept; then down --volumes removes it', async () => {
    const down = await dockerClair(['server', 'down']);
    assert.equal(down.code, 0, describeRun(down));
    assert.deepEqual(leftovers(), [`volume ${NAMES.volume}`]);
    assert.equal(await connectOutcome(port), 'ECONNREFUSED', `nothing listens on 127.0.0.1:${port}`);
    const notRunning = await dockerClair(['server', 'import', updates]);
    assert.equal(notRunning.code, 2, describeRun(notRunning));
    assert.match(notRunning.stderr, /^docker-clair: the managed Clair is not running, so .* cannot be imported; hint: start it with "docker clair server up --import FILE"/m);
    const all = await dockerClair(['server', 'down', '--volumes']);
    assert.equal(all.code, 0, describeRun(all));
    assert.deepEqual(leftovers(), []);
  });

  it('up --import of a file clairctl cannot load: exit 2 with clairctl\'s words, and the new server removed again', async () => {
    const garbage = path.join(plugin!.scratch, 'not-an-export.json');
    writeFileSync(garbage, '{"this is": "not an export"}\n');
    const run = await up(await freePort(), '--import', garbage);
    assert.equal(run.code, 2, describeRun(run));
    assert.match(run.stderr, /^docker-clair: clairctl import-updaters could not load .*not-an-export\.json \(exit code 1\): /m);
    assert.deepEqual(leftovers(), []);
  });
});
