// Parsing a command line as the plugin does, for the option tests.
import assert from 'node:assert/strict';
import { parseCommandLine } from '../../src/cli/app.js';
import { UsageError } from '../../src/runtime/errors.js';

/** The UsageError `args` are rejected with; fails when they are accepted or fail otherwise. */
export async function rejected(args: string[]): Promise<UsageError> {
  try {
    await parseCommandLine(args, {});
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${args.join(' ')} to be rejected`);
}
