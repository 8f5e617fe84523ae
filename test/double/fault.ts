/** Applying a Fault to a response (see options.ts). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Fault } from './options.js';

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function clientGone(res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort(new Error('client disconnected'));
  });
  return ac.signal;
}

/**
 * Handles the faults that pre-empt the answer. Returns 'handled' when the response is done (error, disconnect),
 * the truncate fault for the caller to apply, or undefined to go on.
 */
export async function applyFault(
  fault: Fault | undefined,
  res: ServerResponse,
  signal: AbortSignal,
  error: (status: number, message: string) => void,
): Promise<'handled' | Extract<Fault, { kind: 'truncate' }> | undefined> {
  if (fault === undefined) return undefined;
  switch (fault.kind) {
    case 'error':
      error(fault.status, fault.message ?? '');
      return 'handled';
    case 'disconnect':
      res.socket?.destroy();
      return 'handled';
    case 'delay':
      await sleep(fault.ms, signal);
      return undefined;
    case 'truncate':
      return fault;
  }
}

/** Sends status, headers and only part of the body, then drops the connection. */
export function sendTruncated(_req: IncomingMessage, res: ServerResponse, status: number, body: string,
  headers: Record<string, string | string[]>, bytes: number | undefined): void {
  const buf = Buffer.from(body);
  const cut = Math.max(0, Math.min(buf.length - 1, bytes ?? Math.floor(buf.length / 2)));
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('Content-Length', String(buf.length));
  res.writeHead(status);
  res.write(buf.subarray(0, cut), () => res.socket?.destroy());
}
