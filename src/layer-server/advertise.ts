// Where the layer server listens and which address Clair is told to fetch from. Clair must be able to
// reach it — the most common failure of Clair wrappers — so without --layer-address the choice is the
// local address the kernel would use to reach Clair's host.
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { LayerServeError } from '../runtime/errors.js';
import type { LayerAddress } from './settings.js';

export interface LayerBinding {
  listenHost: string;
  listenPort: number;
  advertiseHost: string;
  advertisePort?: number;
  /** Why this address, for --debug and error messages. */
  why: string;
}

/** Asks the Docker daemon which network gateway reaches a container publishing `port`, if any. */
export type PublishedPortGateway = (port: number) => Promise<string | undefined>;

export async function chooseLayerBinding(clairUrl: URL, option?: LayerAddress, publishedPortGateway?: PublishedPortGateway): Promise<LayerBinding> {
  if (option) {
    // An address of this machine is bound directly; anything else (a NAT or DNS name) is advertised
    // while listening on every interface.
    const local = isLocalAddress(option.host);
    return {
      listenHost: local ? option.host : '0.0.0.0',
      listenPort: option.port ?? 0,
      advertiseHost: option.host,
      why: '--layer-address',
    };
  }
  const clairHost = clairUrl.hostname.replace(/^\[(.*)\]$/, '$1');
  let clairIp: string;
  try {
    clairIp = (await lookup(clairHost)).address;
  } catch (error) {
    throw new LayerServeError(`cannot resolve Clair's host "${clairHost}" to choose a layer-server address`,
      'pass --layer-address HOST[:PORT] with an address of this machine that Clair can reach', { cause: error });
  }
  const clairPort = Number(clairUrl.port) || (clairUrl.protocol === 'https:' ? 443 : 80);
  if (isLoopback(clairIp) && publishedPortGateway) {
    // Clair published on loopback from a container: from inside it, loopback is the container itself, so
    // the layer server must be on the gateway of the container's network (a host address it can reach).
    const gateway = await publishedPortGateway(clairPort);
    if (gateway) {
      return { listenHost: gateway, listenPort: 0, advertiseHost: gateway, why: `Clair runs in a container publishing port ${clairPort}; its network gateway` };
    }
  }
  if (isLoopback(clairIp)) {
    return { listenHost: clairIp.includes(':') ? '::1' : '127.0.0.1', listenPort: 0, advertiseHost: clairIp.includes(':') ? '::1' : '127.0.0.1', why: `Clair is on loopback (${clairIp})` };
  }
  const local = await routeSource(clairIp, clairPort);
  return { listenHost: local, listenPort: 0, advertiseHost: local, why: `the local address that routes to Clair (${clairIp})` };
}

/**
 * The layer server for Clair in a container on a network whose gateway is `gateway`. On a native Linux daemon the
 * gateway is an address of this machine: bound and advertised. Where the daemon runs in a VM (Docker Desktop) it
 * is not; there containers reach the host as host.docker.internal, so listen everywhere and advertise that.
 */
export function containerNetworkBinding(gateway: string, isLocal: (host: string) => boolean = isLocalAddress): LayerBinding {
  if (isLocal(gateway)) {
    return { listenHost: gateway, listenPort: 0, advertiseHost: gateway, why: "the managed Clair's network gateway" };
  }
  return {
    listenHost: '0.0.0.0', listenPort: 0, advertiseHost: 'host.docker.internal',
    why: `the managed Clair's network gateway ${gateway} is not an address of this machine (the daemon runs in a VM?): host.docker.internal`,
  };
}

/** The source address the kernel picks for traffic to `ip` (a connected UDP socket sends nothing). */
async function routeSource(ip: string, port: number): Promise<string> {
  const socket = createSocket(ip.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, ip, () => resolve());
    });
    return socket.address().address;
  } catch (error) {
    throw new LayerServeError(`no route from this machine to Clair at ${ip}`,
      'pass --layer-address HOST[:PORT] with an address of this machine that Clair can reach', { cause: error });
  } finally {
    socket.close();
  }
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

function isLocalAddress(host: string): boolean {
  if (host === '0.0.0.0' || host === '::') return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === host));
}
