// Images in registries as a source: the reference parsed as the docker CLI reads it, the credentials the docker
// CLI would use for its host, and the image resolved to what Clair fetches (registry/client.ts). The platform of a
// multi-platform image: --platform, else the daemon's when one answered, else this machine's.
import { configDir } from '../docker/endpoint.js';
import type { DockerGlobalFlags } from '../docker/global-flags.js';
import { resolveRemoteImage, type RemoteImage } from '../registry/client.js';
import { registryCredential } from '../registry/credentials.js';
import { normalizeArch, parsePlatform, type Platform } from '../registry/manifest.js';
import { isInsecureRegistry, type InsecureRegistries } from '../registry/insecure.js';
import { isLoopbackHost, parseRemoteReference } from '../registry/reference.js';
import { certsDirs, registryTls } from '../registry/tls.js';
import type { Logger } from '../runtime/log.js';
import { proxyHooks, type ProxySettings } from '../runtime/proxy.js';

export interface RemoteContext {
  globals: DockerGlobalFlags;
  env: Record<string, string | undefined>;
  home?: string | undefined;
  log: Logger;
  /** --platform, as given. */
  platform?: string | undefined;
  /** HTTP(S)_PROXY/NO_PROXY for registries and their token servers. */
  proxy?: ProxySettings | undefined;
}

/** What a daemon that answered tells about registries. */
export interface DaemonView {
  platform: Platform;
  insecure(): Promise<InsecureRegistries>;
}

export class RemoteImages {
  /** One client per registry host: each with the TLS trust of its certs.d directory. */
  private readonly clients = new Map<string, Promise<import('got').Got>>();

  constructor(private readonly ctx: RemoteContext) {}

  /**
   * `daemon`, when one answered: its platform (the default) and its insecure registries (reached over https
   * without verification, then http). Without a daemon, loopback registries are plain http, as the daemon's
   * default (127.0.0.0/8) would have them.
   */
  async open(ref: string, signal: AbortSignal, daemon?: DaemonView): Promise<RemoteImage> {
    const { ctx } = this;
    const reference = parseRemoteReference(ref);
    const platform = ctx.platform ? parsePlatform(ctx.platform)
      : daemon?.platform ?? { os: process.platform === 'win32' ? 'windows' : process.platform, architecture: normalizeArch(process.arch) };
    const insecure = daemon ? await isInsecureRegistry(reference.registry, await daemon.insecure()) : isLoopbackHost(reference.registry);
    const transport = !insecure ? 'https' as const : daemon ? 'insecure' as const : 'http' as const;
    const dir = configDir(ctx.globals, ctx.env, ctx.home);
    const image = await resolveRemoteImage(reference, {
      http: await this.client(reference.host),
      credential: async () => {
        const found = await registryCredential(reference.host, { configDir: dir, env: ctx.env, signal });
        ctx.log.debug(`registry ${reference.host}: ${found ? `credentials from ${found.from}` : 'no credentials (anonymous)'}`);
        return found;
      },
      platform,
      transport,
      log: ctx.log,
      signal,
    });
    ctx.log.debug(`image ${ref}: ${image.repoDigest} in the registry, config ${image.configDigest}, ${image.layers.length} layer(s)`);
    return image;
  }

  private client(host: string): Promise<import('got').Got> {
    let client = this.clients.get(host);
    if (!client) {
      client = this.makeClient(host);
      this.clients.set(host, client);
    }
    return client;
  }

  private async makeClient(host: string): Promise<import('got').Got> {
    const { proxy, log } = this.ctx;
    const tls = await registryTls(host, certsDirs(this.ctx.env, this.ctx.home));
    if (tls.files.length) log.debug(`registry ${host}: TLS with ${tls.files.join(', ')}`);
    const { default: got } = await import('got');
    return got.extend({
      headers: { 'user-agent': 'docker-clair' },
      https: { ...(tls.ca ? { certificateAuthority: tls.ca } : {}), ...(tls.cert && tls.key ? { certificate: tls.cert, key: tls.key } : {}) },
      hooks: { beforeRequest: proxyHooks(proxy, { ca: tls.ca, cert: tls.cert, key: tls.key }) },
    });
  }
}
