// Whether an IP address lies in a CIDR range (IPv4 or IPv6), for NO_PROXY and the daemon's insecure registries;
// and whether a host name is this machine's loopback, which no proxy is used for and the daemon trusts over http.
import { isIP } from 'node:net';

/** `localhost`, `::1` or 127.0.0.0/8 (a host name without port or brackets). */
export function isLoopbackName(name: string): boolean {
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

export function inCidr(ip: string, base: string, bits: number): boolean {
  const a = bytesOf(ip);
  const b = bytesOf(base);
  if (!a || !b || a.length !== b.length || bits > a.length * 8) return false;
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if (((a[i >> 3] as number) & mask) !== ((b[i >> 3] as number) & mask)) return false;
  }
  return true;
}

function bytesOf(ip: string): number[] | undefined {
  if (isIP(ip) === 4) return ip.split('.').map(Number);
  if (isIP(ip) !== 6) return undefined;
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = ip.includes('::') ? groups(tail) : [];
  const all = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return all.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}
