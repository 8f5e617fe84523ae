import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareDebVersions, parseDebVersion } from './dpkg-version.js';

const lt = (a: string, b: string): void => {
  assert.equal(compareDebVersions(a, b), -1, `${a} < ${b}`);
  assert.equal(compareDebVersions(b, a), 1, `${b} > ${a}`);
};
const eq = (a: string, b: string): void => assert.equal(compareDebVersions(a, b), 0, `${a} == ${b}`);

test('epochs dominate everything after them', () => {
  lt('1.0', '1:0.1');
  lt('1:9.9', '2:0.0');
  lt('0:5.2', '1:1.0');
  eq('0:1.2-3', '1.2-3');
  lt('1:1.2.13.dfsg-1', '1:1.2.13.dfsg-2');
  lt('9:1.0', '10:0.1');
});

test('tilde sorts before anything, even the end of the string', () => {
  lt('1.0~rc1', '1.0');
  lt('1.0~~', '1.0~');
  lt('1.0~~a', '1.0~');
  lt('1.0~', '1.0');
  lt('1.0~rc1', '1.0~rc2');
  lt('252.39-1~deb12u2', '252.39-1~deb12u3');
  lt('252.39-1~deb12u3', '252.39-1');
  lt('5.7-0.5~deb12u1', '5.7-0.5');
});

test('revisions compare after upstream, and a missing revision equals 0', () => {
  lt('5.2.15-2', '5.2.15-2+b13');
  lt('1.47.0-2+b1', '1.47.0-2+b2');
  lt('1.0-1', '1.0-2');
  lt('1.0-9', '1.0-10');
  eq('1.0', '1.0-0');
  lt('1.0', '1.0-1');
  lt('1.0-1', '1.0.1-1');
  lt('2.36-9+deb12u14', '2.36-9+deb12u99');
  lt('2.36-9+deb12u9', '2.36-9+deb12u10');
});

test('digit runs are numeric, letters sort before other characters', () => {
  lt('1.21.0', '1.21.23');
  lt('1.9', '1.10');
  eq('1.001', '1.1');
  lt('1.0a', '1.0+');
  lt('1.0', '1.0a');
  lt('1.0a.', '1.0.');
  lt('1.34+dfsg-1.2', '1.34+dfsg-1.2+deb12u1');
});

test('parse splits at the first colon and the last hyphen', () => {
  assert.deepEqual(parseDebVersion('1:2.3-4-5'), { epoch: 1, upstream: '2.3-4', revision: '5' });
  assert.deepEqual(parseDebVersion('2.3'), { epoch: 0, upstream: '2.3', revision: '' });
  assert.equal(parseDebVersion(''), undefined);
  assert.equal(parseDebVersion('a:1.0'), undefined);
  assert.equal(parseDebVersion('1.0-'), undefined);
  assert.throws(() => compareDebVersions('x:1', '1.0'));
});
