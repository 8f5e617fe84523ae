/**
 * Alpine's `lib/apk/db/installed`: stanzas of one-letter keys (`P:` name, `V:` version, `A:` arch,
 * `o:` origin, i.e. the source package).
 */
import { parseStanzas } from './control-file.js';

export interface ApkRecord {
  name: string;
  version: string;
  architecture: string;
  origin: string;
}

export function parseApkInstalled(text: string): ApkRecord[] {
  const out: ApkRecord[] = [];
  for (const s of parseStanzas(text)) {
    const name = s.get('P');
    const version = s.get('V');
    if (name === undefined || name === '' || version === undefined || version === '') continue;
    out.push({ name, version, architecture: s.get('A') ?? '', origin: s.get('o') ?? '' });
  }
  return out;
}
