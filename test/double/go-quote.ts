/**
 * Go's `%q` for a byte slice (strconv.Quote over the bytes): Clair puts the first 256 bytes of a bad layer
 * response into its error message this way, so the double does too.
 */
export function goQuote(bytes: Uint8Array): string {
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] ?? 0;
    if (b < 0x80) {
      out += quoteAscii(b);
      i++;
      continue;
    }
    const decoded = decodeRune(bytes, i);
    if (decoded === undefined) {
      out += '\\x' + b.toString(16).padStart(2, '0');
      i++;
      continue;
    }
    const [cp, size] = decoded;
    out += isPrintable(cp) ? String.fromCodePoint(cp) : escapeRune(cp);
    i += size;
  }
  return out + '"';
}

function quoteAscii(b: number): string {
  switch (b) {
    case 0x07: return '\\a';
    case 0x08: return '\\b';
    case 0x0c: return '\\f';
    case 0x0a: return '\\n';
    case 0x0d: return '\\r';
    case 0x09: return '\\t';
    case 0x0b: return '\\v';
    case 0x22: return '\\"';
    case 0x5c: return '\\\\';
    default:
      if (b < 0x20 || b === 0x7f) return '\\x' + b.toString(16).padStart(2, '0');
      return String.fromCharCode(b);
  }
}

function escapeRune(cp: number): string {
  return cp <= 0xffff ? '\\u' + cp.toString(16).padStart(4, '0') : '\\U' + cp.toString(16).padStart(8, '0');
}

function isPrintable(cp: number): boolean {
  // Close enough to unicode.IsPrint for messages: no controls, no format or separator characters.
  return !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/u.test(String.fromCodePoint(cp)) &&
    (cp === 0x20 || !/\p{Zs}/u.test(String.fromCodePoint(cp)));
}

function decodeRune(bytes: Uint8Array, i: number): [number, number] | undefined {
  const b0 = bytes[i] ?? 0;
  let size: number;
  let cp: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) { size = 2; cp = b0 & 0x1f; }
  else if (b0 >= 0xe0 && b0 <= 0xef) { size = 3; cp = b0 & 0x0f; }
  else if (b0 >= 0xf0 && b0 <= 0xf4) { size = 4; cp = b0 & 0x07; }
  else return undefined;
  if (i + size > bytes.length) return undefined;
  for (let k = 1; k < size; k++) {
    const c = bytes[i + k] ?? 0;
    if ((c & 0xc0) !== 0x80) return undefined;
    cp = (cp << 6) | (c & 0x3f);
  }
  const min = size === 2 ? 0x80 : size === 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
  return [cp, size];
}
