// End to end through the packaged executable: dist/docker-clair installed as a plugin into a temporary
// DOCKER_CONFIG and run by the real docker CLI (`docker --config <tmp> -H unix://<proxy> clair scan …`), against
// each test engine (test/helpers/engines.ts) behind a counting proxy (test/helpers/docker-proxy.ts) and a Clair
// double running in this process. What needs the real binary: findings and exit codes, no export on a warm
// rescan, only the new layers sent when Clair knows the base, zero disk (strace + /proc/PID/io), and SIGINT
// mid-scan (direct and through the docker CLI's plugin socket).
//
// Every child is spawned asynchronously: the double answers from this process's event loop.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startClairDouble, type ClairDouble, type ClairDoubleOptions, type ManifestInfo } from '../double/server.js';
import { dockerCli, TEST_DOCKER_HOST, TEST_IMAGES } from '../helpers/daemon.js';
import { imageFacts, testEngines } from '../helpers/engines.js';
import { isImageExport, startDockerProxy, targetOf, type DockerProxy, type ProxiedRequest } from '../helpers/docker-proxy.js';
import { isHarmlessDevice, straceAvailable } from '../helpers/strace.js';
import {
  assertNothingWritten, describeRun, installPlugin, launch as launchChild, parseReport, stderrLines, tracedDockerScan as tracedScan,
  type Finished, type InstalledPlugin, type JsonImage, type Launched, type TracedScan,
} from '../helpers/plugin-run.js';
import { connectOutcome } from '../helpers/ports.js';
import { imageLayerFetches } from '../helpers/layer-fetches.js';
import { until } from '../helpers/wait.js';

const TIMEOUT = 180_000;

let plugin: InstalledPlugin;
let scratch = '';
let config = '';
let installed = '';
let proxy: DockerProxy;

const imageId = (image: string): string => dockerCli(['image', 'inspect', '-f', '{{.Id}}', image]);

before(async () => {
  plugin = installPlugin('docker-clair-scan-e2e-');
  ({ scratch, config, installed } = plugin);
  proxy = await startDockerProxy(targetOf(TEST_DOCKER_HOST));
});

after(async () => {
  await proxy?.close();
  plugin?.remove();
});

// ---------------------------------------------------------------------------------------------------------------------
// Running the binary

function launch(cmd: string, args: string[], options: { extraPipes?: number } = {}): Launched {
  return launchChild(cmd, args, { cwd: scratch, ...options });
}

/** `docker --config <tmp> -H unix://<proxy> clair scan ARGS`, through the proxy of the system daemon or of `via`. */
function dockerScanArgs(args: string[], via: DockerProxy = proxy): string[] {
  return ['--config', config, '-H', via.host, 'clair', 'scan', ...args];
}

function dockerScan(args: string[], via?: DockerProxy): Promise<Finished> {
  return launch('docker', dockerScanArgs(args, via)).done;
}

function exports(requests: ProxiedRequest[]): ProxiedRequest[] {
  return requests.filter(isImageExport);
}

function showRequests(requests: ProxiedRequest[]): string {
  return requests.map((r) => `  ${r.method} ${r.path}`).join('\n');
}

/** Resolves with the first call's manifest, and lets the test decide the fault for every call. */
function indexGate(fault: ClairDoubleOptions['faults']): { first: Promise<ManifestInfo>; manifests: ManifestInfo[]; faults: ClairDoubleOptions['faults'] } {
  const manifests: ManifestInfo[] = [];
  let signal!: (m: ManifestInfo) => void;
  const first = new Promise<ManifestInfo>((resolve) => {
    signal = resolve;
  });
  return {
    first,
    manifests,
    faults: {
      ...fault,
      index: (m) => {
        manifests.push(m);
        signal(m);
        return fault?.index?.(m);
      },
    },
  };
}

/** Waits for `condition` but fails at once (with the child's output) if the child ends first. */
async function beforeExit<T>(condition: Promise<T>, launched: Launched, what: string): Promise<T> {
  const ended = launched.done.then((r) => {
    throw new Error(`the scan ended before ${what}:\n${describeRun(r)}`);
  });
  return Promise.race([condition, ended]);
}

function fsType(dir: string): string {
  return spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout.trim();
}

// ---------------------------------------------------------------------------------------------------------------------

describe('the proxy in front of the daemon', () => {
  it('is transparent to the docker CLI, streams included, and records each request line', { timeout: TIMEOUT }, async () => {
    const mark = proxy.requests.length;
    const r = await launch('docker', ['-H', proxy.host, 'image', 'inspect', '-f', '{{.Id}}', TEST_IMAGES.debian12]).done;
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(r.stdout.trim(), imageId(TEST_IMAGES.debian12));
    const seen = proxy.since(mark);
    assert.ok(seen.some((q) => q.method === 'GET' && /\/images\/docker-clair-test\/debian12:latest\/json$/.test(q.pathname)),
      `no image inspect recorded:\n${showRequests(seen)}`);
    assert.equal(exports(seen).length, 0);
  });

  it('follows keep-alive connections request by request, skipping chunked and sized bodies', { timeout: TIMEOUT }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const request = (method: string, target: string, body?: { chunks: string[] } | { sized: string }): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ socketPath: proxy.socketPath, agent, method, path: target, headers: { Host: 'docker' } }, (res) => {
          res.resume();
          res.once('end', () => resolve(res.statusCode ?? 0));
        });
        req.once('error', reject);
        if (body && 'chunks' in body) {
          for (const c of body.chunks) req.write(c); // no Content-Length: chunked
        } else if (body) {
          req.setHeader('Content-Length', Buffer.byteLength(body.sized));
          req.write(body.sized);
        }
        req.end();
      });
    const mark = proxy.requests.length;
    const connections = proxy.connections();
    try {
      assert.equal(await request('GET', '/_ping'), 200);
      // Bodies that look like request lines must not be taken for requests.
      assert.equal(await request('POST', '/docker-clair-proxy-test/chunked', { chunks: ['GET /fake HTTP/1.1\r\n\r\n', 'x'.repeat(70_000)] }), 404);
      assert.equal(await request('POST', '/docker-clair-proxy-test/sized', { sized: 'GET /fake2 HTTP/1.1\r\n\r\n' }), 404);
      assert.equal(await request('HEAD', '/_ping'), 200);
      assert.equal(await request('GET', '/version?x=1'), 200);
    } finally {
      agent.destroy();
    }
    assert.deepEqual(proxy.since(mark).map((q) => `${q.method} ${q.path}`), [
      'GET /_ping', 'POST /docker-clair-proxy-test/chunked', 'POST /docker-clair-proxy-test/sized', 'HEAD /_ping', 'GET /version?x=1',
    ]);
    assert.equal(proxy.connections() - connections, 1, 'all on one keep-alive connection');
    assert.equal(new Set(proxy.since(mark).map((q) => q.connection)).size, 1);
  });
});

for (const engine of testEngines()) {
  describe(`docker clair scan through the docker CLI on ${engine.label}: findings, exit codes, exports`, () => {
    let clair: ClairDouble;
    let proxy: DockerProxy;
    const diffIds = (image: string): string[] => imageFacts(engine, image).diffIds;
    const imageId = (image: string): string => imageFacts(engine, image).id;
    before(async () => {
      clair = await startClairDouble();
      proxy = await startDockerProxy(targetOf(engine.host));
    });
    after(async () => {
      await clair?.close();
      await proxy?.close();
    });

    it('cold scan of debian12: exit 1, the fixture findings in the JSON report, exactly one export', { timeout: TIMEOUT }, async () => {
      const mark = proxy.requests.length;
      const r = await dockerScan(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12], proxy);
      assert.equal(r.code, 1, describeRun(r));
      const report = parseReport(r.stdout, r);
      assert.equal(report.images.length, 1);
      const image = report.images[0] as JsonImage;
      assert.equal(image.image.ref, TEST_IMAGES.debian12);
      assert.equal(image.image.id, imageId(TEST_IMAGES.debian12));
      assert.equal(image.verdict, 'fail');
      const found = (id: string, pkg: string) => image.vulnerabilities.find((v) => v.id === id && v.package.name === pkg);
      assert.equal(found('CVE-2099-0001', 'libc6')?.severity, 'Critical');
      assert.equal(found('CVE-2099-0001', 'libc6')?.fixedIn, '2.36-9+deb12u99');
      assert.equal(found('CVE-2099-0001', 'libc6')?.layer, diffIds(TEST_IMAGES.debian12)[0]);
      assert.equal(found('CVE-2099-0002', 'bash')?.severity, 'High');
      assert.equal(found('CVE-2099-0002', 'bash')?.fixedIn, null);
      assert.equal(found('CVE-2099-0003', 'coreutils')?.severity, 'Medium');
      assert.ok(image.packageCount > 50, `packageCount ${image.packageCount}`);

      const seen = proxy.since(mark);
      assert.ok(seen.some((q) => /\/images\/docker-clair-test\/debian12:latest\/json$/.test(q.pathname)),
        `the plugin did not inspect the image through the proxy:\n${showRequests(seen)}`);
      assert.equal(exports(seen).length, 1, `expected exactly one export:\n${showRequests(seen)}`);
      assert.deepEqual(imageLayerFetches(clair).map((f) => f.digest), diffIds(TEST_IMAGES.debian12));
    });

    it('warm rescan: same findings, and the daemon is never asked to export', { timeout: TIMEOUT }, async () => {
      const mark = proxy.requests.length;
      const fetches = imageLayerFetches(clair).length;
      const r = await dockerScan(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12], proxy);
      assert.equal(r.code, 1, describeRun(r));
      const image = parseReport(r.stdout, r).images[0] as JsonImage;
      assert.equal(image.vulnerabilities.find((v) => v.id === 'CVE-2099-0001' && v.package.name === 'libc6')?.severity, 'Critical');
      const seen = proxy.since(mark);
      // Not vacuous: the plugin did talk to the daemon through the proxy.
      assert.ok(seen.some((q) => /\/images\/docker-clair-test\/debian12:latest\/json$/.test(q.pathname)),
        `the plugin did not inspect the image through the proxy:\n${showRequests(seen)}`);
      assert.deepEqual(exports(seen), [], `a warm rescan must not export:\n${showRequests(seen)}`);
      assert.equal(imageLayerFetches(clair).length, fetches, 'no layer fetched');
    });

    it('--fail-on none: exit 0 with the same findings', { timeout: TIMEOUT }, async () => {
      const r = await dockerScan(['--clair', clair.url, '--format', 'json', '--fail-on', 'none', TEST_IMAGES.debian12], proxy);
      assert.equal(r.code, 0, describeRun(r));
      const image = parseReport(r.stdout, r).images[0] as JsonImage;
      assert.equal(image.verdict, 'pass');
      assert.ok(image.vulnerabilities.some((v) => v.id === 'CVE-2099-0001'));
    });

    it('Clair already knows the base layer: scanning multilayer sends only its 3 new layers', { timeout: TIMEOUT }, async () => {
      const layers = diffIds(TEST_IMAGES.multilayer);
      assert.equal(layers.length, 4);
      assert.equal(layers[0], diffIds(TEST_IMAGES.debian12)[0], 'multilayer is built on debian12');
      assert.ok(clair.hasScannedLayer(layers[0] as string), 'the previous tests scanned the base layer');
      const mark = proxy.requests.length;
      const fetches = imageLayerFetches(clair).length;
      const r = await dockerScan(['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer], proxy);
      assert.equal(r.code, 1, describeRun(r));
      const fetched = imageLayerFetches(clair).slice(fetches).map((f) => f.digest);
      assert.deepEqual([...fetched].sort(), layers.slice(1).sort(), 'every layer but the shared base, once each');
      assert.equal(exports(proxy.since(mark)).length, 1, showRequests(proxy.since(mark)));
      const fixture = (parseReport(r.stdout, r).images[0] as JsonImage).vulnerabilities.find((v) => v.package.name === 'docker-clair-fixture');
      assert.equal(fixture?.id, 'CVE-2099-0013');
      assert.equal(fixture?.layer, layers[2]);
    });
  });
}

describe('docker clair scan through the docker CLI: untrusted results and errors', () => {
  it('empty vulnerability database: exit 3, verdict "untrusted"', { timeout: TIMEOUT }, async () => {
    const clair = await startClairDouble({ emptyDb: true });
    try {
      const r = await dockerScan(['--clair', clair.url, '--format', 'json', TEST_IMAGES.debian12]);
      assert.equal(r.code, 3, describeRun(r));
      const image = parseReport(r.stdout, r).images[0] as JsonImage;
      assert.equal(image.verdict, 'untrusted');
      assert.match(image.reason, /database is empty/);
      assert.deepEqual(image.vulnerabilities, []);
    } finally {
      await clair.close();
    }
  });

  it('Clair unreachable: exit 2, one line on stderr naming the URL, nothing exported', { timeout: TIMEOUT }, async () => {
    const clair = await startClairDouble();
    const url = clair.url;
    await clair.close();
    const mark = proxy.requests.length;
    const r = await dockerScan(['--clair', url, '--no-progress', TEST_IMAGES.debian12]);
    assert.equal(r.code, 2, describeRun(r));
    assert.equal(r.stdout, '');
    const lines = stderrLines(r);
    assert.equal(lines.length, 1, describeRun(r));
    assert.ok(lines[0]?.startsWith('docker-clair: '), describeRun(r));
    assert.ok(lines[0]?.includes(url), `the error does not name ${url}:\n${describeRun(r)}`);
    assert.match(lines[0] ?? '', /ECONNREFUSED/);
    assert.deepEqual(exports(proxy.since(mark)), []);
  });

  it('unknown image: exit 2, one line on stderr', { timeout: TIMEOUT }, async () => {
    const clair = await startClairDouble();
    try {
      const r = await dockerScan(['--clair', clair.url, '--no-progress', 'docker-clair-test/not-there:0']);
      assert.equal(r.code, 2, describeRun(r));
      assert.equal(r.stdout, '');
      const lines = stderrLines(r);
      assert.equal(lines.length, 1, describeRun(r));
      assert.match(lines[0] ?? '', /^docker-clair: image "docker-clair-test\/not-there:0" not found in the Docker daemon at /);
    } finally {
      await clair.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Zero disk

function tracedDockerScan(args: string[], via?: DockerProxy): Promise<TracedScan> {
  return tracedScan(plugin, dockerScanArgs(args, via));
}

describe('zero disk: the plugin writes no image bytes', () => {
  before(() => {
    assert.ok(straceAvailable(), 'strace is needed for the zero-disk tests: apt-get install strace (.ci/run installs it)');
  });

  it('with --format json=<dir>/r.json only the report is written: a temp name in the same dir, then rename', { timeout: TIMEOUT }, async () => {
    const clair = await startClairDouble();
    const out = mkdtempSync(path.join(scratch, 'report-'));
    const target = path.join(out, 'r.json');
    try {
      const t = await tracedDockerScan(['--clair', clair.url, '--no-progress', '--format', `json=${target}`, TEST_IMAGES.multilayer]);
      assert.equal(t.run.code, 1, describeRun(t.run));
      assert.equal(t.run.stdout, '', 'the only report goes to the file');
      assert.deepEqual(readdirSync(out), ['r.json']);
      const reportText = readFileSync(target, 'utf8');
      const report = parseReport(reportText);
      assert.equal(report.images[0]?.image.ref, TEST_IMAGES.multilayer);
      assert.equal(imageLayerFetches(clair).length, 4, 'a cold scan: every layer went through the plugin');

      const writes = t.writes.filter((w) => !(w.paths.length === 1 && isHarmlessDevice(w.paths[0] as string) && /^open/.test(w.call)));
      // Node's recursive mkdir of an existing directory: a mkdir that fails with EEXIST changes nothing.
      const changing = writes.filter((w) => !(/^mkdir/.test(w.call) && /EEXIST/.test(w.ret) && target.startsWith(`${w.paths[0]}/`)));
      const opens = changing.filter((w) => /^(open|creat)/.test(w.call));
      const renames = changing.filter((w) => /^rename/.test(w.call));
      assert.equal(opens.length, 1, `exactly one file opened for writing:\n${changing.map((w) => w.line).join('\n')}`);
      assert.equal(renames.length, 1, `exactly one rename:\n${changing.map((w) => w.line).join('\n')}`);
      assert.equal(changing.length, 2, changing.map((w) => w.line).join('\n'));
      const temp = opens[0]?.paths[0] ?? '';
      assert.equal(path.dirname(temp), out, 'the temporary file is in the report directory');
      assert.notEqual(temp, target, 'the report is not written in place');
      assert.match(opens[0]?.flags ?? '', /O_CREAT/);
      assert.match(opens[0]?.flags ?? '', /O_EXCL/, 'the temporary name is created exclusively');
      assert.deepEqual(renames[0]?.paths, [temp, target], 'then renamed over the target');
      assert.match(renames[0]?.ret ?? '', /^0/);
      // Whatever reached the disk is the report, not a layer (the smallest layer of a multi-MB image dwarfs it).
      const reportBytes = Buffer.byteLength(reportText);
      const written = t.io.write_bytes ?? NaN;
      assert.ok(written <= Math.ceil(reportBytes / 4096) * 4096 + 64 * 1024, `write_bytes ${written} for a report of ${reportBytes} bytes`);
      // The counters do see the plugin's writes (through strace and docker): the report's pages were counted.
      // tmpfs has no writeback, so nothing is counted there.
      if (fsType(out) !== 'tmpfs') assert.ok(written > 0, `write_bytes is ${written} although the report was written to ${fsType(out)}`);
    } finally {
      await clair.close();
    }
  });
});

for (const engine of testEngines()) {
  describe(`zero disk on ${engine.label}: the plugin writes no image bytes`, () => {
    let proxy: DockerProxy;
    const diffIds = (image: string): string[] => imageFacts(engine, image).diffIds;
    before(async () => {
      assert.ok(straceAvailable(), 'strace is needed for the zero-disk tests: apt-get install strace (.ci/run installs it)');
      proxy = await startDockerProxy(targetOf(engine.host));
    });
    after(() => proxy?.close());

    it('a cold scan of multilayer with the report on stdout opens nothing for writing, writes no image bytes', { timeout: TIMEOUT }, async () => {
      const clair = await startClairDouble();
      try {
        const mark = proxy.requests.length;
        const t = await tracedDockerScan(['--clair', clair.url, '--format', 'json', TEST_IMAGES.multilayer], proxy);
        assert.equal(t.run.code, 1, describeRun(t.run));
        parseReport(t.run.stdout, t.run);
        // The image really went through the plugin: one export, every layer fetched by Clair from the plugin.
        assert.equal(exports(proxy.since(mark)).length, 1);
        assert.deepEqual([...imageLayerFetches(clair).map((f) => f.digest)].sort(), [...diffIds(TEST_IMAGES.multilayer)].sort());
        const bytesServed = imageLayerFetches(clair).reduce((n, f) => n + f.bytes, 0);
        assert.ok(bytesServed > 50e6, `only ${bytesServed} bytes went through the layer server`);

        assertNothingWritten(t);
      } finally {
        await clair.close();
      }
    });

    for (const mode of ['reduced layers (default)', '--v1-full-layers'] as const) {
      const full = mode === '--v1-full-layers';
      it(`Clair v1, ${mode}: a cold scan of multilayer, layers posted parent first, opens nothing for writing, writes no image bytes`, { timeout: TIMEOUT }, async () => {
        const clair = await startClairDouble({ api: 'v1' });
        try {
          const mark = proxy.requests.length;
          const t = await tracedDockerScan(['--clair', clair.url, '--clair-api', 'v1', ...(full ? ['--v1-full-layers'] : []),
            '--format', 'json', TEST_IMAGES.multilayer], proxy);
          assert.equal(t.run.code, 1, describeRun(t.run));
          parseReport(t.run.stdout, t.run);
          // One export: whole layers fit in the default --v1-buffer; reduced ones are tiny.
          assert.equal(exports(proxy.since(mark)).length, 1);
          assert.equal(clair.v1Layers().length, diffIds(TEST_IMAGES.multilayer).length);
          const bytesServed = imageLayerFetches(clair).reduce((n, f) => n + f.bytes, 0);
          if (full) assert.ok(bytesServed > 50e6, `only ${bytesServed} bytes went through the layer server`);
          else assert.ok(bytesServed < 1e6, `${bytesServed} bytes went through the layer server: the layers were not reduced`);
          // Either way the whole image streamed through the plugin (read from the daemon), and none of it hit the disk.
          assert.ok((t.io.rchar ?? 0) > 50e6, `only ${t.io.rchar} bytes read by docker and the plugin`);
          assertNothingWritten(t);
        } finally {
          await clair.close();
        }
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// SIGINT mid-scan

describe('SIGINT mid-scan: exit 130, listener closed, no report left behind', () => {
  /**
   * Starts a cold scan whose first index call Clair never answers, waits until Clair has the manifest (the
   * layer server is listening and the save stream is open), interrupts it with `interrupt`, and checks the
   * aftermath. Only the interruption can end that scan: were it ignored, the run would hang until the watchdog.
   */
  async function interruptedScan(start: (args: string[]) => Launched, interrupt: (l: Launched) => void, why: RegExp): Promise<void> {
    const gate = indexGate({ index: () => ({ kind: 'delay', ms: 24 * 3600_000 }) });
    const clair = await startClairDouble({ faults: gate.faults });
    const out = mkdtempSync(path.join(scratch, 'cancel-'));
    const target = path.join(out, 'out.json');
    try {
      const launched = start(['--clair', clair.url, '--no-progress', '--format', `json=${target}`, TEST_IMAGES.debian12]);
      const manifest = await beforeExit(gate.first, launched, "Clair's index hook was called");
      const uri = manifest.layers[0]?.uri ?? '';
      const port = Number(new URL(uri).port);
      assert.ok(port > 0, `no layer URI in the manifest: ${JSON.stringify(manifest)}`);
      assert.equal(await connectOutcome(port), 'connected', 'the layer server is listening while the scan is in flight');

      interrupt(launched);
      const r = await launched.done;
      assert.equal(r.code, 130, describeRun(r));
      // The held index request was abandoned by the client, not answered.
      await until('Clair to see the index request abandoned', () =>
        clair.requests.some((q) => q.method === 'POST' && /index_report/.test(q.path) && q.status === 499) || undefined);
      const lines = stderrLines(r);
      assert.equal(lines.length, 1, describeRun(r));
      assert.match(lines[0] ?? '', /^docker-clair: .*cancel/i, describeRun(r));
      assert.match(lines[0] ?? '', why, describeRun(r));
      assert.equal(r.stdout, '');
      assert.deepEqual(readdirSync(out), [], 'no report and no temporary file left behind');
      assert.equal(await connectOutcome(port), 'ECONNREFUSED', 'the layer server is closed');
      assert.equal(gate.manifests.length, 1, 'nothing indexed after the interruption');
    } finally {
      await clair.close();
    }
  }

  it('the binary run directly gets SIGINT', { timeout: TIMEOUT }, async () => {
    await interruptedScan(
      (args) => launch(installed, ['scan', '-H', proxy.host, ...args]),
      (l) => l.child.kill('SIGINT'),
      /cancelled \(SIGINT\)/,
    );
  });

  it('through the docker CLI (stdout not a TTY): SIGINT to docker closes the plugin socket, the status is passed through', { timeout: TIMEOUT }, async () => {
    await interruptedScan(
      (args) => launch('docker', dockerScanArgs(args)),
      // Only the docker CLI gets the signal (the plugin is in another process group than any terminal here):
      // it closes the plugin socket, which is the plugin's cancel notice.
      (l) => l.child.kill('SIGINT'),
      // The plugin got no signal itself: it noticed the socket closing.
      /cancelled \(the docker CLI asked to stop\)/,
    );
  });
});
