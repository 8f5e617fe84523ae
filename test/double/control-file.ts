/**
 * RFC 822-like stanzas as dpkg's status file and apk's installed database use them: blank-line separated
 * paragraphs of `Key: value` lines; lines starting with a space or tab continue the previous field.
 */
export type Stanza = Map<string, string>;

/** Splits `text` into stanzas. Keys are kept as written; use `field()` for case-insensitive reads. */
export function parseStanzas(text: string, separator = ':'): Stanza[] {
  const stanzas: Stanza[] = [];
  let current: Stanza = new Map();
  let lastKey: string | undefined;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    if (line.trim() === '') {
      if (current.size > 0) stanzas.push(current);
      current = new Map();
      lastKey = undefined;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && lastKey !== undefined) {
      current.set(lastKey, `${current.get(lastKey) ?? ''}\n${line.slice(1)}`);
      continue;
    }
    const at = line.indexOf(separator);
    if (at <= 0) continue;
    lastKey = line.slice(0, at);
    current.set(lastKey, line.slice(at + 1).trim());
  }
  if (current.size > 0) stanzas.push(current);
  return stanzas;
}

/** Case-insensitive field lookup (dpkg field names are case-insensitive). */
export function field(stanza: Stanza, name: string): string | undefined {
  const direct = stanza.get(name);
  if (direct !== undefined) return direct;
  const lower = name.toLowerCase();
  for (const [k, v] of stanza) if (k.toLowerCase() === lower) return v;
  return undefined;
}
