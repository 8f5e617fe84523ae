// What the benchmarks read from /proc: process and machine CPU time, bytes written, the memory of a running
// process, the dockerd serving a socket, and a wait for an idle machine.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

const CLK_TCK = 100; // USER_HZ, 100 on every Linux the benchmark targets

function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Samples, every 100 ms, RssAnon and RssFile (/proc/PID/status) of the process running the executable `exe` as a
 * grandchild of the wrapper shell (sh -> time -> command): which part of the RSS is the mapped executable and
 * which is memory the process allocated. Sampling can miss a short peak; /usr/bin/time's figure is the exact peak.
 */
export class MemorySampler {
  constructor(exe) {
    this.exe = exe;
    this.anon = 0;
    this.file = 0;
    this.samples = 0;
  }

  start(shPid) {
    this.shPid = shPid;
    this.timer = setInterval(() => this.tick(), 100);
    this.tick();
  }

  tick() {
    if (this.pid === undefined) {
      for (const c of childrenOf(this.shPid)) {
        for (const g of childrenOf(c)) {
          try {
            if (readlinkSync(`/proc/${g}/exe`) === this.exe) this.pid = g;
          } catch {
            // gone
          }
        }
      }
      if (this.pid === undefined) return;
    }
    try {
      const st = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? 0) * 1024;
      this.anon = Math.max(this.anon, kb('RssAnon'));
      this.file = Math.max(this.file, kb('RssFile'));
      this.samples++;
    } catch {
      // exited
    }
  }

  stop() {
    clearInterval(this.timer);
  }

  result() {
    return this.samples > 0 ? { anon: this.anon, file: this.file, samples: this.samples } : undefined;
  }
}

/**
 * utime+stime of a process, in seconds; undefined when it is gone or unreadable. `reaped`: also the CPU of its
 * children that have exited and been waited for (cutime+cstime).
 */
function procCpuS(pid, { reaped = false } = {}) {
  if (!pid) return undefined;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return (Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0)) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of a PostgreSQL cluster: the postmaster, its live children (the backends of Clair's connections,
 * checkpointer, walwriter …) and the children it has reaped. A backend that exits between two snapshots moves
 * from the live sum into the postmaster's cutime, so a difference of two snapshots counts it once.
 */
function pgTreeCpuS(postmasterPid) {
  const own = procCpuS(postmasterPid, { reaped: true });
  if (own === undefined) return undefined;
  return childrenOf(postmasterPid).reduce((a, c) => a + (procCpuS(c, { reaped: true }) ?? 0), own);
}

function procWriteBytes(pid) {
  if (!pid) return undefined;
  try {
    const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Busy and total CPU seconds of the whole machine (all cores) from /proc/stat. */
function machineCpuS() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / CLK_TCK, total: (busy + idle + iowait) / CLK_TCK };
}

/**
 * Waits (up to `maxMs`) until the machine has been nearly idle for one second (< `threshold` cores busy), so that
 * other work on a shared machine disturbs the next measurement less. Returns how long it waited and whether the
 * machine was idle when it gave up waiting.
 */
export async function waitForIdle(maxMs, threshold = 0.3) {
  const t0 = performance.now();
  let cores = 0;
  for (;;) {
    const a = machineCpuS();
    const s0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const b = machineCpuS();
    cores = (b.busy - a.busy) / ((performance.now() - s0) / 1000);
    const waited = performance.now() - t0;
    if (cores < threshold) return { waited, idle: true, cores };
    if (waited >= maxMs) return { waited, idle: false, cores };
  }
}

/** The dockerd serving `socket` (by /proc comm and command line); undefined if it cannot be told apart. */
export function findDockerd(socket) {
  const found = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'dockerd') continue;
      found.push({ pid: Number(pid), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      // gone meanwhile
    }
  }
  const bySocket = found.filter((d) => d.cmdline.includes(socket));
  if (bySocket.length === 1) return bySocket[0].pid;
  return found.length === 1 ? found[0].pid : undefined;
}

/**
 * A snapshot of the CPU counters the scan benchmark compares before/after a run. `doublePid` is the Clair double,
 * or the real Clair with `pgPid` its PostgreSQL postmaster.
 */
export function cpuSnapshot(dockerdPid, doublePid, pgPid) {
  return {
    machine: machineCpuS(),
    dockerd: procCpuS(dockerdPid),
    dockerdWrite: procWriteBytes(dockerdPid),
    double: procCpuS(doublePid),
    doubleWrite: pgPid ? procWriteBytes(doublePid) : undefined,
    pg: pgPid ? pgTreeCpuS(pgPid) : undefined,
  };
}

export function cpuDelta(a, b) {
  const d = (x, y) => (x === undefined || y === undefined ? undefined : y - x);
  return {
    machineBusy: b.machine.busy - a.machine.busy,
    machineTotal: b.machine.total - a.machine.total,
    dockerd: d(a.dockerd, b.dockerd),
    dockerdWrite: d(a.dockerdWrite, b.dockerdWrite),
    double: d(a.double, b.double),
    doubleWrite: d(a.doubleWrite, b.doubleWrite),
    pg: d(a.pg, b.pg),
  };
}
