// Waiting on something outside the test's process that announces nothing (a container's state, a child's
// listening port): poll it. The bound is not an expected duration; it only turns a wait that would never end
// into a failure naming what was awaited, so it is generous.
import { setTimeout as sleep } from 'node:timers/promises';

export interface UntilOptions {
  /** The failure bound (default 120 s). */
  timeoutMs?: number;
  /** The pause between probes (default 100 ms). */
  intervalMs?: number;
  /** Ends the wait at once, failing with the signal's reason (e.g. the awaited process exited). */
  signal?: AbortSignal;
}

/** Resolves with the first value `probe` returns other than undefined; a probe that throws is tried again. */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined,
  options: UntilOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    }
    const signal = options.signal;
    await sleep(options.intervalMs ?? 100, undefined, signal === undefined ? {} : { signal }).catch((err: unknown) => {
      throw signal?.aborted === true ? signal.reason : err;
    });
  }
}
