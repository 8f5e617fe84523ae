/** Clair's digest forms: `sha256:<64 hex>` and `sha512:<128 hex>` (claircore digest.go). Nothing else. */

export interface Digest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
  text: string;
}

export class DigestError extends Error {}

export function parseDigest(text: unknown): Digest {
  if (typeof text !== 'string') throw new DigestError(`invalid digest: not a string`);
  const colon = text.indexOf(':');
  if (colon < 0) throw new DigestError(`invalid digest ${JSON.stringify(text)}: missing algorithm`);
  const algorithm = text.slice(0, colon);
  const hex = text.slice(colon + 1);
  let want: number;
  switch (algorithm) {
    case 'sha256': want = 64; break;
    case 'sha512': want = 128; break;
    default: throw new DigestError(`invalid digest ${JSON.stringify(text)}: unknown algorithm ${JSON.stringify(algorithm)}`);
  }
  if (!/^[0-9a-fA-F]*$/.test(hex)) {
    throw new DigestError(`invalid digest ${JSON.stringify(text)}: unable to decode checksum: encoding/hex: invalid byte`);
  }
  if (hex.length !== want) {
    throw new DigestError(`invalid digest ${JSON.stringify(text)}: bad checksum length: ${hex.length / 2}`);
  }
  return { algorithm, hex: hex.toLowerCase(), text };
}
