// Reading `strace -f` output: which process did what to the file system.
//
// Run strace with `-f -qq -e signal=none -s 4096` and a trace set that includes execve and the process-creating
// calls (clone, clone3, fork, vfork) besides the file calls of interest; then `processTree()` finds the pids
// (threads included) that belong to one program, and `fileWrites()` lists what they did that can write.
import { spawnSync } from 'node:child_process';

export interface SyscallEvent {
  pid: number;
  name: string;
  /** The argument text, without the enclosing parentheses (joined across unfinished/resumed lines). */
  args: string;
  /** The return value as printed (`0`, `-1 ENOENT (No such file or directory)`, `?`). */
  ret: string;
}

/** The calls that create a process or thread, and the file calls to check. */
export const PROCESS_CALLS = ['execve', 'clone', 'clone3', 'fork', 'vfork'] as const;
export const FILE_WRITE_CALLS = [
  'open', 'openat', 'openat2', 'creat', 'rename', 'renameat', 'renameat2', 'mkdir', 'mkdirat', 'truncate', 'ftruncate',
] as const;

/** Arguments for strace that produce what parseStrace() reads. */
export function straceArgs(output: string): string[] {
  return ['-f', '-qq', '-e', 'signal=none', '-s', '4096', '-e', `trace=${[...FILE_WRITE_CALLS, ...PROCESS_CALLS].join(',')}`, '-o', output];
}

/** Whether strace can be run (Debian: `apt-get install strace`). */
export function straceAvailable(): boolean {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

export function parseStrace(text: string): SyscallEvent[] {
  const events: SyscallEvent[] = [];
  const pending = new Map<number, { name: string; args: string }>();
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    const rest = m[2] as string;
    if (rest.startsWith('---') || rest.startsWith('+++')) continue;
    let name: string;
    let body: string;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      name = resumed[1] as string;
      const start = pending.get(pid);
      pending.delete(pid);
      body = `${start?.name === name ? start.args : ''}${resumed[2] as string}`;
    } else {
      const call = /^(\w+)\((.*)$/.exec(rest);
      if (!call) continue;
      name = call[1] as string;
      body = call[2] as string;
      const unfinished = /^(.*?)\s*<unfinished \.\.\.>$/.exec(body);
      if (unfinished) {
        pending.set(pid, { name, args: unfinished[1] as string });
        continue;
      }
    }
    // body: `args) = ret`; the last `)  = ` separates them (strace pads resumed lines with spaces).
    const split = /^(.*)\)\s+=\s+(\S.*)$/s.exec(body);
    if (!split) {
      events.push({ pid, name, args: body.replace(/\)\s*$/, ''), ret: '?' });
      continue;
    }
    events.push({ pid, name, args: split[1] as string, ret: (split[2] as string).trim() });
  }
  return events;
}

/** The first quoted string of an argument list (strace's C escapes undone for the common cases). */
export function firstPath(args: string): string | undefined {
  return quotedStrings(args)[0];
}

export function quotedStrings(args: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(args); m; m = re.exec(args)) {
    out.push((m[1] as string).replace(/\\(x[0-9a-f]{2}|[0-7]{1,3}|.)/gi, (_, e: string) => {
      if (e[0] === 'x' || e[0] === 'X') return String.fromCharCode(parseInt(e.slice(1), 16));
      if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
      return ({ n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' } as Record<string, string>)[e] ?? e;
    }));
  }
  return out;
}

function succeeded(e: SyscallEvent): boolean {
  return /^\d+/.test(e.ret);
}

/**
 * The pids (processes and their threads) of the program whose successful execve matches `isRoot`, and of
 * everything it created afterwards. A pid's clones made before its execve (there are none for a process
 * started by fork+exec) are not counted.
 */
export function processTree(events: SyscallEvent[], isRoot: (path: string, argv: string[]) => boolean): Set<number> {
  const tree = new Set<number>();
  for (const e of events) {
    if (e.name === 'execve' && succeeded(e)) {
      const [path = '', ...argv] = quotedStrings(e.args);
      if (isRoot(path, argv)) tree.add(e.pid);
    } else if ((PROCESS_CALLS as readonly string[]).includes(e.name) && e.name !== 'execve' && tree.has(e.pid)) {
      const child = /^(\d+)/.exec(e.ret);
      if (child) tree.add(Number(child[1]));
    }
  }
  return tree;
}

export interface FileWrite {
  pid: number;
  call: string;
  /** Paths named by the call (open: one; rename: from, to). */
  paths: string[];
  flags?: string;
  ret: string;
  line: string;
}

const WRITE_FLAGS = /\b(O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE)\b/;

/**
 * Every call by `pids` that can change the file system: opens with a write/create flag, creat, renames,
 * mkdirs and truncates (successful or not: an attempt counts).
 */
export function fileWrites(events: SyscallEvent[], pids: Set<number>): FileWrite[] {
  const out: FileWrite[] = [];
  for (const e of events) {
    if (!pids.has(e.pid)) continue;
    const line = `${e.pid} ${e.name}(${e.args}) = ${e.ret}`;
    switch (e.name) {
      case 'open':
      case 'openat':
      case 'openat2': {
        // open(path, flags[, mode]); openat(dirfd, path, flags[, mode]); openat2(dirfd, path, {flags=…}, size)
        const flags = e.name === 'openat2' ? /flags=([A-Z0-9_|]+)/.exec(e.args)?.[1] ?? ''
          : /"\s*,\s*([A-Z0-9_|]+)/.exec(e.args)?.[1] ?? '';
        if (WRITE_FLAGS.test(flags)) out.push({ pid: e.pid, call: e.name, paths: quotedStrings(e.args).slice(0, 1), flags, ret: e.ret, line });
        break;
      }
      case 'creat':
      case 'rename':
      case 'renameat':
      case 'renameat2':
      case 'mkdir':
      case 'mkdirat':
      case 'truncate':
      case 'ftruncate':
        out.push({ pid: e.pid, call: e.name, paths: quotedStrings(e.args), ret: e.ret, line });
        break;
    }
  }
  return out;
}

/** Device files any process may open for writing without writing to a disk. */
export function isHarmlessDevice(path: string): boolean {
  return /^\/dev\/(null|zero|full|tty|ptmx|pts\/\d+|stdout|stderr|fd\/[12])$/.test(path) || /^\/proc\/self\/fd\/[12]$/.test(path);
}
