// Clair's pre-shared-key auth: a JWT signed HS256 with the base64-decoded key, whose `iss` must be on
// Clair's allow-list (quay/clair middleware/auth/httpauth_psk.go). A fresh short-lived token is made per request.
import { createHmac } from 'node:crypto';

export interface PskAuth {
  /** The key exactly as configured in Clair (`auth.psk.key`): base64. */
  key: string;
  issuer: string;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export function signPskToken(auth: PskAuth, now: Date = new Date(), ttlSeconds = 300): string {
  const iat = Math.floor(now.getTime() / 1000);
  // As clairctl mints them: nbf a minute back allows for clock skew between here and Clair.
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ iss: auth.issuer, iat, nbf: iat - 60, exp: iat + ttlSeconds }));
  const signature = createHmac('sha256', Buffer.from(auth.key, 'base64')).update(`${header}.${claims}`).digest();
  return `${header}.${claims}.${b64url(signature)}`;
}

/** A PSK must decode to bytes; an empty or non-base64 key is a configuration mistake worth naming. */
export function isBase64Key(key: string): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(key) && Buffer.from(key, 'base64').length > 0;
}
