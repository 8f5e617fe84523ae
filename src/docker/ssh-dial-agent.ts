// ssh:// endpoints go through the system ssh client running `docker system dial-stdio` on the remote
// host, exactly as the docker CLI does (docker/cli cli/connhelper/ssh/ssh.go): ~/.ssh/config, keys, the agent
// and known_hosts all apply, which docker-modem's built-in ssh2 path (lib/ssh.js) ignores.
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { Transport } from './endpoint.js';

type SshTransport = Extract<Transport, { kind: 'ssh' }>;

/** The argv of the ssh client for one connection (docker cli connhelper/ssh Spec.Command). */
export function sshDialArgs(t: SshTransport): string[] {
  const args = ['-o', 'ConnectTimeout=30', '-T'];
  if (t.user) args.push('-l', t.user);
  if (t.port) args.push('-p', String(t.port));
  const remote = t.socketPath && t.socketPath.replace(/\//g, '') !== ''
    ? ['docker', `--host=unix://${t.socketPath}`, 'system', 'dial-stdio']
    : ['docker', 'system', 'dial-stdio'];
  args.push('--', t.hostname, ...remote);
  return args;
}

/** An HTTP agent whose every connection is a fresh `ssh … docker system dial-stdio` process. */
export class SshDialAgent extends Agent {
  constructor(
    private readonly transport: SshTransport,
    private readonly sshCommand = 'ssh',
  ) {
    super({ keepAlive: false });
  }

  override createConnection(): Socket {
    const child = spawn(this.sshCommand, sshDialArgs(this.transport), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    // A dead ssh makes stdin fail with EPIPE; the exit handler below reports why it died instead.
    child.stdin.on('error', () => {});
    const stream = new Duplex({
      write(chunk, _encoding, callback) {
        child.stdin.write(chunk, () => callback());
      },
      final(callback) {
        child.stdin.end(callback);
      },
      read() {
        child.stdout.resume();
      },
      destroy(error, callback) {
        child.kill();
        callback(error);
      },
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (!stream.push(chunk)) child.stdout.pause();
    });
    child.on('error', (error) => stream.destroy(error));
    // End of the connection is decided when ssh has exited, not at stdout's EOF: a failing ssh
    // closes stdout first, and its exit status and last stderr line are what the user needs to see.
    child.on('close', (code) => {
      if (stream.destroyed) return;
      if (code === 0 || code === null) {
        stream.push(null);
      } else {
        const detail = stderr.trim().split('\n').pop() ?? '';
        stream.destroy(new Error(`ssh exited with status ${code}${detail ? `: ${detail}` : ''}`));
      }
    });
    // http.ClientRequest only needs a Duplex; these socket methods are called on it and are no-ops here.
    const socketLike = stream as unknown as Socket & Record<string, unknown>;
    socketLike.setKeepAlive = () => socketLike;
    socketLike.setNoDelay = () => socketLike;
    socketLike.setTimeout = () => socketLike;
    socketLike.ref = () => socketLike;
    socketLike.unref = () => socketLike;
    return socketLike;
  }
}
