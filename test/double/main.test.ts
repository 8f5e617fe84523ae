import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs } from './main.js';

test('CLI flags map onto the double\'s options', () => {
  assert.deepEqual(parseArgs(['--listen', '0.0.0.0:6060', '--api', 'both', '--vulns', 'v.json', '--empty-db',
    '--psk', 'a2V5', '--issuer', 'me', '--fetch-concurrency=3', '--index-concurrency', '5', '--range-probe']), {
    host: '0.0.0.0', port: 6060, api: 'both', vulns: 'v.json', emptyDb: true, psk: 'a2V5', issuers: ['me'],
    fetchConcurrency: 3, indexConcurrency: 5, rangeProbe: true,
  });
  assert.deepEqual(parseArgs(['--listen', '[::1]:0']), { host: '::1', port: 0 });
  assert.throws(() => parseArgs([]), /--listen is required/);
  assert.throws(() => parseArgs(['--listen', 'x:1', '--api', 'v3']), /--api/);
  assert.throws(() => parseArgs(['--listen', 'x:1', '--fetch-concurrency', '0']), /positive integer/);
});
