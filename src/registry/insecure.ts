// The daemon's insecure registries (`insecure-registries` in daemon.json, `docker info` RegistryConfig): a registry
// named there, or whose address falls in one of its CIDR ranges (127.0.0.0/8 by default), may be reached over https
// without verification, then plain http, as the daemon reaches it. A host name is resolved to test the ranges.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { inCidr } from '../runtime/cidr.js';

export interface InsecureRegistries {
  /** InsecureRegistryCIDRs. */
  cidrs: string[];
  /** Names (host or host:port) of IndexConfigs entries with Secure false. */
  hosts: string[];
}

/** The daemon's RegistryConfig (`GET /info`), as the parts that say which registries are insecure. */
export function insecureRegistriesOf(registryConfig: unknown): InsecureRegistries {
  const config = (registryConfig ?? {}) as { InsecureRegistryCIDRs?: unknown; IndexConfigs?: unknown };
  const cidrs = Array.isArray(config.InsecureRegistryCIDRs) ? config.InsecureRegistryCIDRs.filter((c): c is string => typeof c === 'string') : [];
  const indexes = typeof config.IndexConfigs === 'object' && config.IndexConfigs !== null ? Object.values(config.IndexConfigs) : [];
  const hosts = indexes.flatMap((c) => {
    const entry = c as { Name?: unknown; Secure?: unknown };
    return entry.Secure === false && typeof entry.Name === 'string' ? [entry.Name] : [];
  });
  return { cidrs, hosts };
}

export async function isInsecureRegistry(host: string, insecure: InsecureRegistries): Promise<boolean> {
  if (insecure.hosts.includes(host)) return true;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  if (insecure.hosts.includes(name)) return true;
  if (insecure.cidrs.length === 0) return false;
  let addresses: string[];
  if (isIP(name) !== 0) addresses = [name];
  else {
    try {
      addresses = (await lookup(name, { all: true })).map((a) => a.address);
    } catch {
      return false;
    }
  }
  return addresses.some((address) => insecure.cidrs.some((cidr) => {
    const [base = '', bits = ''] = cidr.split('/');
    return inCidr(address, base, Number(bits));
  }));
}
