// Waiting for something to become ready by asking again and again: one loop for every readiness wait, so
// each wait says only what it asks and what giving up means.
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** Pause between the end of one probe and the start of the next. */
  intervalMs: number;
  /** Ends the polling: the deadline, usually combined with `cancel`. */
  deadline: AbortSignal;
  /** The caller's own abort (Ctrl-C): rejects with its reason rather than as a timeout. */
  cancel?: AbortSignal;
  /** The error for a deadline that passed while waiting between probes. */
  timedOut: () => Error | Promise<Error>;
}

/**
 * Calls `probe` until it yields a value (anything but undefined), pausing `intervalMs` between calls. The
 * probe runs at least once, and whatever it throws ends the polling with that error: a probe that must not
 * give up on a failure catches it and yields undefined. Only the pause watches the deadline, so a probe that
 * can block checks `deadline` itself.
 */
export async function poll<T>(probe: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    try {
      await sleep(options.intervalMs, undefined, { signal: options.deadline });
    } catch {
      if (options.cancel?.aborted) throw options.cancel.reason;
      throw await options.timedOut();
    }
  }
}
