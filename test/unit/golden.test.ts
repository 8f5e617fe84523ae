// The golden-file rule every golden test goes through (assertGolden): under CI a missing golden fails the test
// instead of being written.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertGolden } from '../helpers/report-formats.js';

describe('assertGolden', () => {
  const saved = { CI: process.env.CI, UPDATE_GOLDEN: process.env.UPDATE_GOLDEN };
  beforeEach(() => {
    delete process.env.UPDATE_GOLDEN;
  });
  afterEach(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('under CI=true a missing golden fails and is not written', () => {
    process.env.CI = 'true';
    const name = `missing-${process.pid}-${Date.now()}.txt`;
    assert.throws(() => assertGolden(name, 'text\n'), new RegExp(`golden file ${name.replace(/\./g, '\\.')} missing`));
    assert.equal(existsSync(fileURLToPath(new URL(`../golden/${name}`, import.meta.url))), false);
  });

  it('an existing golden that differs fails', () => {
    assert.throws(() => assertGolden('clean.json', 'not the clean report\n'), /differs from test\/golden\/clean\.json/);
  });
});
