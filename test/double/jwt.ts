/**
 * Clair's PSK authentication (middleware/auth/httpauth_psk.go): `Authorization: Bearer <compact JWS>`,
 * HS256 over the base64-decoded key, `iss` required and on the allow-list (`clair-intraservice` is always
 * allowed), `exp`/`nbf`/`iat` enforced when present with 15 s leeway. Anything else is a bare 401.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const LEEWAY_SECONDS = 15;
export const INTRASERVICE_ISSUER = 'clair-intraservice';

export interface PskConfig {
  /** The decoded HMAC key (Clair's config holds it as standard base64). */
  key: Buffer;
  issuers: string[];
}

function b64url(buf: Buffer): string {
  return buf.toString('base64url');
}

function decodeJson(part: string): unknown {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new Error('bad base64url');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** Why a request is refused, or undefined when its token is good. */
export function checkBearer(authorization: string | undefined, cfg: PskConfig, nowSeconds: number): string | undefined {
  if (authorization === undefined || !authorization.startsWith('Bearer ')) return 'no bearer token';
  const token = authorization.slice('Bearer '.length);
  const parts = token.split('.');
  if (parts.length !== 3) return 'not a compact JWS';
  const [h, p, s] = parts as [string, string, string];
  let header: unknown;
  let claims: unknown;
  try {
    header = decodeJson(h);
    claims = decodeJson(p);
  } catch {
    return 'undecodable token';
  }
  if (typeof header !== 'object' || header === null || (header as { alg?: unknown }).alg !== 'HS256') return 'alg is not HS256';
  if (!/^[A-Za-z0-9_-]+$/.test(s)) return 'bad signature encoding';
  const want = createHmac('sha256', cfg.key).update(`${h}.${p}`).digest();
  const got = Buffer.from(s, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'bad signature';
  if (typeof claims !== 'object' || claims === null) return 'claims are not an object';
  const c = claims as Record<string, unknown>;
  const iss = c['iss'];
  if (typeof iss !== 'string' || iss === '') return 'missing iss';
  if (iss !== INTRASERVICE_ISSUER && !cfg.issuers.includes(iss)) return `issuer ${JSON.stringify(iss)} not allowed`;
  const num = (k: string): number | undefined | null => {
    const v = c[k];
    if (v === undefined) return undefined;
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  };
  const exp = num('exp');
  const nbf = num('nbf');
  const iat = num('iat');
  if (exp === null || nbf === null || iat === null) return 'malformed time claim';
  if (exp !== undefined && nowSeconds - LEEWAY_SECONDS > exp) return 'token expired';
  if (nbf !== undefined && nowSeconds + LEEWAY_SECONDS < nbf) return 'token not valid yet';
  if (iat !== undefined && nowSeconds + LEEWAY_SECONDS < iat) return 'token issued in the future';
  return undefined;
}

/** Mints a token the way clairctl does (tests use it to talk to the double). */
export function signJwt(claims: Record<string, unknown>, key: Buffer, header: Record<string, unknown> = { alg: 'HS256' }): string {
  const h = b64url(Buffer.from(JSON.stringify(header)));
  const p = b64url(Buffer.from(JSON.stringify(claims)));
  const s = b64url(createHmac('sha256', key).update(`${h}.${p}`).digest());
  return `${h}.${p}.${s}`;
}
