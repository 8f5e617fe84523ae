/**
 * Debian version comparison (Debian Policy §5.6.12, as dpkg's verrevcmp implements it).
 *
 * A version is `[epoch:]upstream[-revision]`. Epochs compare numerically; upstream and revision compare by
 * alternating non-digit and digit runs. In non-digit runs `~` sorts before everything (even the end of the
 * string), letters sort before non-letters. Digit runs compare numerically. A missing revision equals "0".
 */

export interface DebVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** Parses a Debian version; returns undefined when it is not one (empty, bad epoch, empty upstream). */
export function parseDebVersion(text: string): DebVersion | undefined {
  const v = text.trim();
  if (v === '' || /\s/.test(v)) return undefined;
  let epoch = 0;
  let rest = v;
  const colon = v.indexOf(':');
  if (colon >= 0) {
    const e = v.slice(0, colon);
    if (!/^\d+$/.test(e)) return undefined;
    epoch = Number(e);
    rest = v.slice(colon + 1);
  }
  let upstream = rest;
  let revision = '';
  const dash = rest.lastIndexOf('-');
  if (dash >= 0) {
    upstream = rest.slice(0, dash);
    revision = rest.slice(dash + 1);
    if (revision === '') return undefined;
  }
  if (upstream === '' || !/^[0-9]/.test(upstream)) {
    // dpkg only warns on a non-digit start; accept it but never an empty upstream.
    if (upstream === '') return undefined;
  }
  return { epoch, upstream, revision };
}

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isAlpha = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

function order(c: string): number {
  if (c === '') return 0;
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp over one version part. */
export function compareVersionPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const at = (s: string, k: number): string => (k < s.length ? s.charAt(k) : '');
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(at(a, i))) || (j < b.length && !isDigit(at(b, j)))) {
      const ac = order(at(a, i));
      const bc = order(at(b, j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (at(a, i) === '0') i++;
    while (at(b, j) === '0') j++;
    while (isDigit(at(a, i)) && isDigit(at(b, j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(at(a, i))) return 1;
    if (isDigit(at(b, j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** Compares two parsed versions: negative, zero or positive. */
export function compareParsed(a: DebVersion, b: DebVersion): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  const u = compareVersionPart(a.upstream, b.upstream);
  if (u !== 0) return Math.sign(u);
  return Math.sign(compareVersionPart(a.revision, b.revision));
}

/** Compares two version strings; throws on an unparsable one. Result is -1, 0 or 1. */
export function compareDebVersions(a: string, b: string): number {
  const pa = parseDebVersion(a);
  const pb = parseDebVersion(b);
  if (pa === undefined) throw new Error(`invalid dpkg version ${JSON.stringify(a)}`);
  if (pb === undefined) throw new Error(`invalid dpkg version ${JSON.stringify(b)}`);
  return compareParsed(pa, pb);
}
