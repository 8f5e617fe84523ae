// The floor of the relay: scripts/bench/relay-floor/main.go, a Go program that only copies `docker save` from the
// daemon's socket into a TCP connection whose reader discards it. scan-relay times it in the same rounds as the
// plain save and the plugin, so each figure of the plugin stands beside what any relay reaches on the same machine,
// daemon and image, in the same minutes. Built with the Go toolchain (the one scripts/real-clair.sh needs); without
// one the floor is skipped and said so.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../bundle.mjs';
import { runMeasured, spawnListening } from './common.mjs';
import { cpuDelta, cpuSnapshot } from './proc.mjs';

const SOURCE = path.join(ROOT, 'scripts', 'bench', 'relay-floor');
const BINARY = path.join(ROOT, 'build', 'bench', 'relay-floor');

/** Builds the floor relay; returns its path, or `{ missing }` with the reason it cannot be built here. */
export function buildFloor() {
  const env = { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/local/go/bin`, GOTOOLCHAIN: 'local',
    GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0' };
  const go = spawnSync('go', ['version'], { env, encoding: 'utf8' });
  if (go.error || go.status !== 0) return { missing: 'no Go toolchain on PATH' };
  mkdirSync(path.dirname(BINARY), { recursive: true });
  const r = spawnSync('go', ['build', '-trimpath', '-o', BINARY, '.'], { cwd: SOURCE, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`go build in ${SOURCE} failed (exit ${r.status ?? r.signal}):\n${`${r.stdout}${r.stderr}`.trim()}`);
  return { binary: BINARY };
}

/** Starts the discarding reader on a free loopback port: `{ address, pid, stop }`. */
export function startSink(binary) {
  return spawnListening('relay-floor sink', binary, ['sink', '127.0.0.1:0'],
    { env: process.env, stdio: ['ignore', 'pipe', 'inherit'], from: 'stdout', listening: /^(\S+:\d+)$/ });
}

/**
 * One relay of `img` through the floor to `sink`: wall time and the relay's CPU as /usr/bin/time measures the
 * plugin's, the daemon's CPU, and the sink's as the double's. Throws unless every byte of the export arrived.
 */
export async function floorRelay(ctx, img, floor, sink) {
  const before = cpuSnapshot(ctx.dockerdPid, sink.pid);
  const label = `relay-floor relay ${img.ref}`;
  const r = await runMeasured(label, floor, ['relay', ctx.socket, img.ref, sink.address], { env: ctx.env });
  const cpu = cpuDelta(before, cpuSnapshot(ctx.dockerdPid, sink.pid));
  const bytes = Number(/^relayed (\d+) bytes$/m.exec(r.stdout)?.[1] ?? Number.NaN);
  // An export holds every layer (uncompressed on the classic store): fewer bytes than the image means it was cut.
  if (r.exit !== 0 || !(bytes >= img.size * 0.5)) {
    throw new Error(`${label}: exit ${r.exit}, ${bytes} bytes relayed for a ${img.size}-byte image\n${r.stderr}`.trim());
  }
  return { r, cpu, bytes };
}
