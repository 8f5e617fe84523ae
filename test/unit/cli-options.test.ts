import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine, type Invocation } from '../../src/cli/app.js';
import type { ScanOptions } from '../../src/cli/options/scan-options.js';
import { UsageError } from '../../src/runtime/errors.js';

const PLUGIN_ENV = { DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND: 'docker' };

async function scan(args: string[], env: Record<string, string> = {}): Promise<Readonly<ScanOptions>> {
  const { invocation } = await parseCommandLine(['scan', ...args], env);
  assert.equal(invocation.kind, 'scan');
  return (invocation as Extract<Invocation, { kind: 'scan' }>).options;
}

async function usageError(args: string[], env: Record<string, string> = {}): Promise<UsageError> {
  try {
    await parseCommandLine(args, env);
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${args.join(' ')} to be rejected`);
}

describe('scan option parsing', () => {
  it('has the documented defaults', async () => {
    const o = await scan(['alpine:3']);
    assert.deepEqual(o.images, ['alpine:3']);
    assert.deepEqual(o.outputs, [{ format: 'table' }]);
    assert.equal(o.failOn, 'High');
    assert.equal(o.ignoreUnfixed, false);
    assert.equal(o.timeoutMs, 600_000);
    assert.equal(o.quiet, false);
    assert.equal(o.progress, true);
    assert.equal(o.color, undefined);
    assert.equal(o.clairUrl, undefined);
    assert.equal(o.layerAddress, undefined);
    assert.ok(Object.isFrozen(o));
  });

  it('takes several images', async () => {
    assert.deepEqual((await scan(['a', 'b:1', 'sha256:abc'])).images, ['a', 'b:1', 'sha256:abc']);
  });

  it('requires an image unless --input is given', async () => {
    assert.match((await usageError(['scan'])).message, /requires at least 1 image/);
    assert.equal((await scan(['--input', '-'])).input, '-');
  });

  it('--clair beats CLAIR_ADDR; a bare host:port means http', async () => {
    assert.equal((await scan(['x'], { CLAIR_ADDR: 'clair:6060' })).clairUrl?.href, 'http://clair:6060/');
    assert.equal((await scan(['--clair', 'https://c.example', 'x'], { CLAIR_ADDR: 'clair:6060' })).clairUrl?.href, 'https://c.example/');
    const e = await usageError(['scan', '--clair', 'ftp://u:secret@c', 'x']);
    assert.match(e.message, /scheme must be http or https/);
    assert.doesNotMatch(e.message, /secret/);
  });

  it('--format is repeatable, with FMT=PATH, and -o redirects the stdout report', async () => {
    const o = await scan(['--format', 'table', '--format', 'junit=reports/clair.xml', '--format=json=out.json', 'x']);
    assert.deepEqual(o.outputs, [{ format: 'table' }, { format: 'junit', path: 'reports/clair.xml' }, { format: 'json', path: 'out.json' }]);
    assert.deepEqual((await scan(['--format', 'JSON', '-o', 'r.json', 'x'])).outputs, [{ format: 'json', path: 'r.json' }]);
    assert.deepEqual((await scan(['--output=r.txt', 'x'])).outputs, [{ format: 'table', path: 'r.txt' }]);
  });

  it('rejects unknown formats, two stdout reports, a useless -o and clashing paths', async () => {
    assert.match((await usageError(['scan', '--format', 'xml', 'x'])).message, /unknown --format "xml"/);
    assert.match((await usageError(['scan', '--format', 'json', '--format', 'table', 'x'])).message, /only one report can go to stdout/);
    assert.match((await usageError(['scan', '--format', 'json=a', '-o', 'b', 'x'])).message, /--output has no report to write/);
    assert.match((await usageError(['scan', '--format', 'json=a', '--format', 'junit=a', 'x'])).message, /two reports would be written to a/);
    assert.match((await usageError(['scan', '--format', 'json=', 'x'])).message, /needs a path/);
    assert.match((await usageError(['scan', '--format'])).message, /Not enough arguments following: format/);
    assert.match((await usageError(['scan', '-o', 'a', '-o', 'b', 'x'])).message, /--output was given more than once/);
  });

  it('--fail-on takes any severity, case-insensitively, or none', async () => {
    assert.equal((await scan(['--fail-on', 'CRITICAL', 'x'])).failOn, 'Critical');
    assert.equal((await scan(['--fail-on', 'negligible', 'x'])).failOn, 'Negligible');
    assert.equal((await scan(['--fail-on', 'none', 'x'])).failOn, 'none');
    const e = await usageError(['scan', '--fail-on', 'severe', 'x']);
    assert.match(e.message, /invalid --fail-on "severe"/);
    assert.match(e.hint ?? '', /unknown, negligible, low, medium, high, critical, none/);
  });

  it('--timeout takes Go-style durations or seconds', async () => {
    assert.equal((await scan(['--timeout', '90s', 'x'])).timeoutMs, 90_000);
    assert.equal((await scan(['--timeout', '1h30m', 'x'])).timeoutMs, 5_400_000);
    assert.equal((await scan(['--timeout', '1.5m', 'x'])).timeoutMs, 90_000);
    assert.equal((await scan(['--timeout', '250ms', 'x'])).timeoutMs, 250);
    assert.equal((await scan(['--timeout', '45', 'x'])).timeoutMs, 45_000);
    assert.equal((await scan(['--timeout', '0', 'x'])).timeoutMs, 0);
    assert.match((await usageError(['scan', '--timeout', '10 minutes', 'x'])).message, /invalid --timeout/);
    assert.match((await usageError(['scan', '--timeout', '5d', 'x'])).message, /invalid --timeout/);
  });

  it('--layer-address takes HOST, HOST:PORT and IPv6 forms', async () => {
    assert.deepEqual((await scan(['--layer-address', '10.0.0.5', 'x'])).layerAddress, { host: '10.0.0.5' });
    assert.deepEqual((await scan(['--layer-address', 'build.example:8080', 'x'])).layerAddress, { host: 'build.example', port: 8080 });
    assert.deepEqual((await scan(['--layer-address', '[fd00::1]:9000', 'x'])).layerAddress, { host: 'fd00::1', port: 9000 });
    assert.deepEqual((await scan(['--layer-address', 'fd00::1', 'x'])).layerAddress, { host: 'fd00::1' });
    for (const bad of ['host:', 'host:70000', 'ho st', ':80', 'http://host']) {
      assert.match((await usageError(['scan', '--layer-address', bad, 'x'])).message, /invalid --layer-address/, bad);
    }
  });

  it('parses the boolean switches', async () => {
    const o = await scan(['--ignore-unfixed', '-q', '--no-color', '--ignore-file', '.clairignore', 'x']);
    assert.equal(o.ignoreUnfixed, true);
    assert.equal(o.quiet, true);
    assert.equal(o.progress, false, '--quiet implies no progress');
    assert.equal(o.color, false);
    assert.equal(o.ignoreFile, '.clairignore');
    assert.equal((await scan(['--no-progress', 'x'])).progress, false);
  });

  it('rejects unknown flags and commands with a usage error', async () => {
    assert.match((await usageError(['scan', '--bogus', 'x'])).message, /unknown flag: bogus/);
    const e = await usageError(['scna', 'x'], PLUGIN_ENV);
    assert.equal(e.message, 'unknown command "scna" for "docker clair"');
    assert.match((await usageError([])).message, /requires a command/);
  });
});

describe('plugin invocation', () => {
  it('parses what the docker CLI passes: global flags, the clair token, the command', async () => {
    const { invocation, globals, pluginMode } = await parseCommandLine(
      ['--context', 'prod', '-D', 'clair', 'scan', '--fail-on', 'critical', 'app:1'],
      PLUGIN_ENV,
    );
    assert.equal(pluginMode, true);
    assert.equal(globals.context, 'prod');
    assert.equal(globals.debug, true);
    assert.equal(invocation.kind, 'scan');
    assert.equal((invocation as Extract<Invocation, { kind: 'scan' }>).options.failOn, 'Critical');
  });

  it('also takes docker flags after the command, for standalone use', async () => {
    const { globals } = await parseCommandLine(['-H', 'unix:///a.sock', 'scan', '-H', 'unix:///b.sock', '--tlsverify', 'x'], {});
    assert.deepEqual(globals.hosts, ['unix:///a.sock', 'unix:///b.sock']);
    assert.equal(globals.tlsVerify, true);
  });

  it('prints help naming the plugin as docker users call it', async () => {
    const { invocation } = await parseCommandLine(['clair', '--help'], PLUGIN_ENV);
    assert.equal(invocation.kind, 'text');
    const text = (invocation as Extract<Invocation, { kind: 'text' }>).text;
    assert.match(text, /Usage: {2}docker clair COMMAND/);
    assert.match(text, /docker clair scan/);
    assert.match(text, /docker clair version/);
    const scanHelp = await parseCommandLine(['help', 'clair', 'scan'], PLUGIN_ENV);
    const scanText = (scanHelp.invocation as Extract<Invocation, { kind: 'text' }>).text;
    assert.match(scanText, /Usage: {2}docker clair scan \[OPTIONS\] IMAGE \[IMAGE\.\.\.\]/);
    for (const flag of ['--clair', '--format', '--output', '--fail-on', '--ignore-file', '--ignore-unfixed', '--layer-address', '--timeout', '--input', '--quiet', '--progress', '--color']) {
      assert.ok(scanText.includes(flag), `scan help lists ${flag}`);
    }
  });
});

describe('start-up cost of parsing', () => {
  /** Calls of Intl.Segmenter's segment() while `fn` runs: the help layout measures every string with it. */
  async function segmentCalls(fn: () => Promise<unknown>): Promise<number> {
    const proto = Intl.Segmenter.prototype;
    const original = proto.segment;
    let calls = 0;
    proto.segment = function (this: Intl.Segmenter, input: string) {
      calls += 1;
      return original.call(this, input);
    };
    try {
      await fn();
    } finally {
      proto.segment = original;
    }
    return calls;
  }

  it('a command renders no help text; --help does', async () => {
    assert.equal(await segmentCalls(() => parseCommandLine(['scan', '--clair', 'http://clair:6060', 'app:1'], {})), 0);
    assert.equal(await segmentCalls(() => parseCommandLine(['server', 'status'], {})), 0);
    const help = await segmentCalls(async () => {
      const { invocation } = await parseCommandLine(['scan', '--help'], {});
      assert.equal(invocation.kind, 'text');
    });
    assert.ok(help > 0, 'the probe sees the help layout');
  });
});
