#!/usr/bin/env node
// The two phases of one `docker save` (GET /images/{name}/get), read by a minimal client that throws the bytes
// away: until the first byte (Engine < 25 with the classic store stages the whole export on its own disk first) and
// from the first to the last byte (streaming). For each: wall time, dockerd CPU seconds and the whole machine's busy
// CPU seconds (/proc). docs/benchmarks.md uses it for the lower bound of a cold scan on a 2-core machine.
//
//   node scripts/bench-save-phases.mjs IMAGE [RUNS]       DOCKER_HOST=unix://… (default /var/run/docker.sock)
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';

const [image, runsArg] = process.argv.slice(2);
if (!image) {
  console.error('usage: node scripts/bench-save-phases.mjs IMAGE [RUNS]');
  process.exit(2);
}
const socketPath = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');

function dockerdPid() {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'dockerd') continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(socketPath)) return pid;
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no dockerd serving ${socketPath}`);
}
const ticks = 100;
const procCpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / ticks;
};
const machineBusy = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / ticks;
};

function once(pid) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c0 = procCpu(pid);
    const m0 = machineBusy();
    let first;
    let bytes = 0;
    const req = http.get({ socketPath, path: `/images/${encodeURIComponent(image)}/get` }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET /images/${image}/get: ${res.statusCode}`));
      res.on('data', (chunk) => {
        first ??= { t: performance.now(), c: procCpu(pid), m: machineBusy() };
        bytes += chunk.length;
      });
      res.on('end', () => {
        const t2 = performance.now();
        const f = first ?? { t: t2, c: procCpu(pid), m: machineBusy() };
        resolve({
          bytes,
          firstByte: (f.t - t0) / 1000,
          lastByte: (t2 - t0) / 1000,
          dockerdBefore: f.c - c0,
          dockerdStreaming: procCpu(pid) - f.c,
          machineBefore: f.m - m0,
          machineStreaming: machineBusy() - f.m,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const pid = dockerdPid();
const f2 = (x) => x.toFixed(2);
for (let i = 0; i < Number(runsArg ?? 3); i++) {
  const r = await once(pid);
  console.log(`${image}: ${(r.bytes / 1e6).toFixed(1)} MB; first byte ${f2(r.firstByte)} s (dockerd ${f2(r.dockerdBefore)} cpu-s, ` +
    `machine busy ${f2(r.machineBefore)}), streaming ${f2(r.lastByte - r.firstByte)} s to the last byte at ${f2(r.lastByte)} s ` +
    `(dockerd ${f2(r.dockerdStreaming)} cpu-s, machine busy ${f2(r.machineStreaming)})`);
}
