// Secrets never reach logs: URL user-info passwords are replaced before a URL is shown.

/** `tcp://user:secret@host:2376` → `tcp://user:***@host:2376`; anything unparsable is returned as is. */
export function redactUrl(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@:]*):([^/@]*)@/i, (_m, scheme: string, user: string) => `${scheme}${user}:***@`);
}
