// A layer server started while Clair is asked whether it already has the image. A cold scan needs the server next,
// and its start (binding, and Node's first listen: ~5–10 ms of CPU) then overlaps Clair's round trip; a warm scan
// closes it unused.
import type { LayerBinding } from './advertise.js';
import { LayerServer } from './server.js';

export interface EarlyLayerServer {
  /** `question`'s answer (whether Clair has the image); when the question fails, the server is closed first. */
  during<T>(question: Promise<T>): Promise<T>;
  /** The server, for a scan that needs it; a failed start is thrown here. */
  take(): Promise<LayerServer>;
  /** Closes it unused; a failed start is no error then. */
  discard(): Promise<void>;
}

export function startEarly(binding: LayerBinding, signal: AbortSignal): EarlyLayerServer {
  const starting = LayerServer.start({ ...binding, signal });
  starting.catch(() => undefined); // taken or discarded later: not an unhandled rejection meanwhile
  const discard = async (): Promise<void> => {
    const server = await starting.catch(() => undefined);
    await server?.close();
  };
  return {
    during: (question) => question.catch(async (error: unknown) => {
      await discard();
      throw error;
    }),
    take: () => starting,
    discard,
  };
}
