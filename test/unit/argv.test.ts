import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgvError, splitArgv } from '../../src/plugin/argv.js';

const PLUGIN_ENV = { DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND: 'docker' };

describe('splitArgv', () => {
  it('takes docker global flags before the clair token in plugin mode', () => {
    const r = splitArgv(['--config', '/c', '--context', 'prod', 'clair', 'scan', 'img', '--fail-on', 'low'], PLUGIN_ENV);
    assert.equal(r.pluginMode, true);
    assert.deepEqual(r.args, ['scan', 'img', '--fail-on', 'low']);
    assert.equal(r.globals.config, '/c');
    assert.equal(r.globals.context, 'prod');
    assert.deepEqual(r.globals.hosts, []);
  });

  it('accepts every pflag spelling of -H and the short flags', () => {
    for (const argv of [
      ['-H', 'unix:///x.sock', 'clair'],
      ['-Hunix:///x.sock', 'clair'],
      ['-H=unix:///x.sock', 'clair'],
      ['--host', 'unix:///x.sock', 'clair'],
      ['--host=unix:///x.sock', 'clair'],
    ]) {
      assert.deepEqual(splitArgv(argv, PLUGIN_ENV).globals.hosts, ['unix:///x.sock'], argv.join(' '));
    }
    const r = splitArgv(['-D', '-l', 'debug', '-c', 'ctx', 'clair', 'version'], PLUGIN_ENV);
    assert.equal(r.globals.debug, true);
    assert.equal(r.globals.logLevel, 'debug');
    assert.equal(r.globals.context, 'ctx');
    assert.deepEqual(r.args, ['version']);
  });

  it('keeps repeated -H so resolution can reject it as docker does', () => {
    assert.deepEqual(splitArgv(['-H', 'a', '-H', 'b', 'clair'], PLUGIN_ENV).globals.hosts, ['a', 'b']);
  });

  it('parses TLS flags, --tlsverify=false and quoted paths', () => {
    const r = splitArgv(['--tls', '--tlsverify=false', '--tlscacert', '"/certs/ca.pem"', "--tlscert='/c.pem'", '--tlskey', '/k.pem', 'clair'], PLUGIN_ENV);
    assert.equal(r.globals.tls, true);
    assert.equal(r.globals.tlsVerify, false);
    assert.equal(r.globals.tlsCaCert, '/certs/ca.pem');
    assert.equal(r.globals.tlsCert, '/c.pem');
    assert.equal(r.globals.tlsKey, '/k.pem');
    assert.equal(splitArgv(['clair'], PLUGIN_ENV).globals.tlsVerify, undefined);
  });

  it('rejects a bad boolean and a missing value', () => {
    assert.throws(() => splitArgv(['--tlsverify=maybe', 'clair'], PLUGIN_ENV), ArgvError);
    assert.throws(() => splitArgv(['-H'], PLUGIN_ENV), /flag needs an argument: -H/);
  });

  it('turns `docker help clair [cmd]` into --help', () => {
    assert.deepEqual(splitArgv(['help', 'clair'], PLUGIN_ENV).args, ['--help']);
    assert.deepEqual(splitArgv(['help', 'clair', 'scan'], PLUGIN_ENV).args, ['scan', '--help']);
  });

  it('leaves standalone argv alone, including a literal "clair"', () => {
    const r = splitArgv(['scan', 'clair'], {});
    assert.equal(r.pluginMode, false);
    assert.deepEqual(r.args, ['scan', 'clair']);
    assert.deepEqual(splitArgv(['clair', 'scan'], {}).args, ['clair', 'scan']);
  });

  it('stops at the first flag that is not docker\'s', () => {
    assert.deepEqual(splitArgv(['-D', '--help'], {}).args, ['--help']);
    assert.deepEqual(splitArgv(['--version'], {}).args, ['--version']);
  });
});
