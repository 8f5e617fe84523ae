// The daemon's own words for a failed API call, for messages about the daemon source and the managed Clair.

/** The daemon's own words for a failed call: its JSON `message` (or plain-text body), else the error's. */
export function daemonMessage(error: unknown): string {
  const json = (error as { json?: { message?: unknown } | string }).json;
  if (json && typeof json === 'object' && typeof json.message === 'string') return json.message;
  if (typeof json === 'string' && json.trim()) return json.trim();
  return (error as Error).message ?? String(error);
}
