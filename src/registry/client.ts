// An image in a registry, resolved for Clair to fetch straight from it: the manifest (through an index for the
// platform), its digest, the config digest (the image ID), the layer blobs' URLs, and an Authorization Clair may
// use: a token scoped to pulling this one repository. No layer byte passes through here; a rescan Clair already
// has costs the manifest requests only.
import { createHash } from 'node:crypto';
import type { Got } from 'got';
import { ImageNotFoundError, RegistryAuthError, RegistryError, errnoCode } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { authorize, type Authorization } from './auth.js';
import { parseChallenge } from './challenge.js';
import type { RegistryCredential } from './credentials.js';
import { MANIFEST_ACCEPT, choosePlatform, formatPlatform, parseManifest, type Platform } from './manifest.js';
import { familiarName, type RemoteReference } from './reference.js';

export interface RemoteLayer {
  /** The blob digest: what Clair hashes the fetched bytes to. */
  digest: string;
  mediaType: string;
  size: number;
  url: string;
}

export interface RemoteImage {
  readonly kind: 'remote';
  /** The reference as given. */
  ref: string;
  /** host[:port]/repository@digest. */
  repoDigest: string;
  /** The manifest's digest: the manifest hash Clair indexes it under. */
  manifestDigest: string;
  /** The config digest: the image ID, as the daemon would report it. */
  configDigest: string;
  platform: Platform | undefined;
  layers: RemoteLayer[];
  /** What Clair sends with each layer GET: a pull-scoped token; absent for a registry that asked for none. */
  clairHeaders: Record<string, string[]>;
  /** host[:port] for messages. */
  host: string;
}

export interface ResolveOptions {
  http: Got;
  /**
   * `https`: verified TLS only; `insecure` (a registry the daemon lists as insecure): https without verification,
   * then plain http, as the daemon tries them; `http`: plain http only (loopback, when no daemon says otherwise).
   */
  transport: 'https' | 'insecure' | 'http';
  credential: () => Promise<RegistryCredential | undefined>;
  platform: Platform;
  log: Logger;
  signal?: AbortSignal | undefined;
}

export async function resolveRemoteImage(ref: RemoteReference, options: ResolveOptions): Promise<RemoteImage> {
  const session = new RepositorySession(ref, options);
  const first = await session.manifest(ref.digest ?? (ref.tag as string));
  let manifest = first.manifest;
  let digest = first.digest;
  let platform: Platform | undefined;
  if (manifest.kind === 'index') {
    const chosen = choosePlatform(manifest.index, options.platform, ref.given);
    options.log.debug(`${ref.given}: index ${digest}, ${formatPlatform(options.platform)} → ${chosen.digest}`);
    platform = chosen.platform;
    const second = await session.manifest(chosen.digest);
    if (second.manifest.kind !== 'image') throw new RegistryError(`the index of ${ref.given} points at another index for ${formatPlatform(options.platform)}`);
    manifest = second.manifest;
    digest = second.digest;
  }
  if (manifest.kind !== 'image') throw new RegistryError(`${ref.given} resolved to no image manifest`);
  const auth = session.authorization;
  if (auth?.kind === 'basic') {
    throw new RegistryAuthError(`the registry at ${ref.host} takes only Basic authentication, so Clair could fetch the layers only with your password`,
      `docker clair never gives Clair a password: docker pull ${ref.given}, then scan it from the daemon (--image-src daemon)`);
  }
  const base = session.base;
  const layers = manifest.manifest.layers
    .filter((l) => !l.urls?.length) // foreign layers live elsewhere and are not distributable; Clair skips them too
    .map((l) => ({ digest: l.digest, mediaType: l.mediaType ?? '', size: l.size ?? 0, url: `${base}/blobs/${l.digest}` }));
  return {
    kind: 'remote',
    ref: ref.given,
    repoDigest: `${familiarName(ref)}@${digest}`,
    manifestDigest: digest,
    configDigest: manifest.manifest.config.digest,
    platform,
    layers,
    clairHeaders: auth ? { Authorization: [auth.header] } : {},
    host: ref.host,
  };
}

/** Requests to one repository, authorized on the first 401 and with the same authorization after. */
class RepositorySession {
  authorization: Authorization | undefined;
  /** The schemes still to try; the first is the one in use once a request got an answer. */
  private schemes: ('https' | 'http')[];
  private answered = false;

  constructor(
    private readonly ref: RemoteReference,
    private readonly options: ResolveOptions,
  ) {
    this.schemes = options.transport === 'http' ? ['http'] : options.transport === 'insecure' ? ['https', 'http'] : ['https'];
  }

  get base(): string {
    return `${this.schemes[0]}://${this.ref.registry}/v2/${this.ref.repository}`;
  }

  /** A manifest by tag or digest, checked against its digest. */
  async manifest(reference: string): Promise<{ digest: string; manifest: ReturnType<typeof parseManifest> }> {
    const response = await this.get(`/manifests/${reference}`, MANIFEST_ACCEPT);
    const what = this.ref.given;
    if (response.statusCode === 404) {
      throw new ImageNotFoundError(`image "${what}" not found in the registry at ${this.ref.host} (no manifest ${reference})`,
        `check the name and tag, or push it first (docker push ${what})`);
    }
    if (response.statusCode === 401 || response.statusCode === 403) {
      throw new RegistryAuthError(`the registry at ${this.ref.host} denied pulling ${this.ref.repository} (HTTP ${response.statusCode})`,
        `check that your login may pull it: docker login ${this.ref.host}`);
    }
    if (response.statusCode !== 200) throw new RegistryError(`the registry at ${this.ref.host} answered HTTP ${response.statusCode} for the manifest of ${what}`);
    const body = response.rawBody;
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const said = headerOf(response.headers['docker-content-digest']);
    if (reference.startsWith('sha256:') && reference !== digest) {
      throw new RegistryError(`the manifest ${reference} of ${what} hashes to ${digest}`, 'the registry served other bytes than the digest names');
    }
    if (said?.startsWith('sha256:') && said !== digest) {
      throw new RegistryError(`the manifest of ${what} hashes to ${digest}, but the registry says ${said}`);
    }
    return { digest, manifest: parseManifest(body, headerOf(response.headers['content-type']), what) };
  }

  private async get(path: string, accept: string) {
    let response = await this.send(path, accept);
    if (response.statusCode === 401 && !this.authorization) {
      const challenge = parseChallenge(response.headers['www-authenticate']);
      if (challenge) {
        this.authorization = await authorize(challenge, {
          http: this.options.http, host: this.ref.host, repository: this.ref.repository,
          credential: await this.options.credential(), signal: this.options.signal,
        });
        response = await this.send(path, accept);
      }
    }
    return response;
  }

  private async send(path: string, accept: string) {
    const headers: Record<string, string> = { accept };
    if (this.authorization) headers.authorization = this.authorization.header;
    for (;;) {
      const scheme = this.schemes[0];
      try {
        const response = await this.options.http.get(`${this.base}${path}`, {
          headers, throwHttpErrors: false, responseType: 'buffer', followRedirect: true, timeout: { request: 60_000 },
          // A name that does not resolve or a port that refuses is not retried: a missing image must fail fast.
          retry: { limit: 2, errorCodes: ['ECONNRESET', 'EPIPE', 'ETIMEDOUT'] },
          ...(scheme === 'https' && this.options.transport === 'insecure' ? { https: { rejectUnauthorized: false } } : {}),
          ...(this.options.signal ? { signal: this.options.signal } : {}),
        });
        this.answered = true;
        return response;
      } catch (error) {
        if (this.options.signal?.aborted) throw this.options.signal.reason;
        // An insecure registry that does not speak https (or not here): plain http next, as the daemon does.
        if (!this.answered && this.schemes.length > 1) {
          this.options.log.debug(`registry ${this.ref.host}: ${scheme} failed (${errnoCode(error) ?? (error as Error).message}); trying ${this.schemes[1]}`);
          this.schemes.shift();
          continue;
        }
        throw this.unreachable(error);
      }
    }
  }

  private unreachable(error: unknown): RegistryError {
    const code = errnoCode(error) ?? (error as { code?: string }).code;
    const said = `${code ?? ''} ${(error as Error).message ?? ''}`;
    if (/WRONG_VERSION_NUMBER|EPROTO|packet length too long/i.test(said)) {
      return new RegistryError(`the registry at ${this.ref.host} does not answer https (${code ?? (error as Error).message})`,
        "a registry that serves plain http must be among the daemon's insecure-registries (daemon.json), as docker pull needs it", { cause: error });
    }
    if (code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(code)) {
      return new RegistryError(`the registry at ${this.ref.host} presented a certificate that is not trusted here (${code})`,
        `put its CA certificate in /etc/docker/certs.d/${this.ref.host}/ca.crt (or ~/.config/docker/certs.d/${this.ref.host}/ca.crt), as for the daemon`, { cause: error });
    }
    return new RegistryError(`cannot reach the registry at ${this.ref.host} (${code ?? (error as Error).message})`,
      'check the registry name, and the network path to it (HTTPS_PROXY/NO_PROXY)', { cause: error });
  }
}

function headerOf(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
