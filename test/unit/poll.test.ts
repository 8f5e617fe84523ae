// The one polling loop every readiness wait uses: a value ends it, a probe's error ends it, and so does the
// deadline or the caller's abort, each with its own error.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { poll } from '../../src/runtime/poll.js';

describe('poll', () => {
  it('probes until the probe yields a value, pausing between probes', async () => {
    let calls = 0;
    const value = await poll(async () => (++calls === 3 ? 'ready' : undefined),
      { intervalMs: 1, deadline: AbortSignal.timeout(5_000), timedOut: () => new Error('timed out') });
    assert.equal(value, 'ready');
    assert.equal(calls, 3);
  });

  it('ends with what the probe throws', async () => {
    await assert.rejects(poll(async () => {
      throw new Error('stopped');
    }, { intervalMs: 1, deadline: AbortSignal.timeout(5_000), timedOut: () => new Error('timed out') }), /stopped/);
  });

  it('probes once even past the deadline, then gives up with the timeout error', async () => {
    let calls = 0;
    const deadline = AbortSignal.abort();
    await assert.rejects(poll(async () => {
      calls++;
      return undefined;
    }, { intervalMs: 1, deadline, timedOut: async () => new Error('timed out') }), /timed out/);
    assert.equal(calls, 1);
  });

  it("the caller's abort rejects with its reason, not as a timeout", async () => {
    const cancel = new AbortController();
    cancel.abort(new Error('interrupted'));
    await assert.rejects(poll(async () => undefined,
      { intervalMs: 1_000, deadline: cancel.signal, cancel: cancel.signal, timedOut: () => new Error('timed out') }), /interrupted/);
  });
});
