// The managed local Clair: a private bridge network, a PostgreSQL container with a named volume, and Clair
// v4 in combo mode publishing its API on 127.0.0.1 only. Created, inspected and removed through dockerode
// alone (no `docker` binary), recognised by name *and* label so a user's own containers are never touched.
// One object per daemon connection, one method per `server` action; each action lives in its own module.
import type Dockerode from 'dockerode';
import type { UpdateSummary } from './clair-client.js';
import { down } from './down.js';
import { runningEndpoint, type ManagedClairEndpoint } from './endpoint.js';
import { importIntoRunning, type UpdatesFile } from './import.js';
import { copyLogs } from './logs.js';
import type { Role } from './names.js';
import type { ManagedSecrets } from './secrets.js';
import { serverStatus, type ServerStatus } from './status.js';
import { up, type UpOptions, type UpResult } from './up.js';

export class ManagedServer {
  constructor(private readonly docker: Dockerode) {}

  up(options: UpOptions): Promise<UpResult> {
    return up(this.docker, options);
  }

  /** `server import`: loads an updates file into the running managed Clair; its data afterwards when it answers. */
  import(file: UpdatesFile, secrets: ManagedSecrets | undefined, progress: (line: string) => void,
    signal: AbortSignal): Promise<{ airGapped: boolean; update?: UpdateSummary }> {
    return importIntoRunning(this.docker, file, secrets, progress, signal);
  }

  status(secrets: ManagedSecrets | undefined, signal: AbortSignal): Promise<ServerStatus> {
    return serverStatus(this.docker, secrets, signal);
  }

  logs(role: Role, options: { follow: boolean; tail?: number }, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream,
    signal: AbortSignal): Promise<void> {
    return copyLogs(this.docker, role, options, stdout, stderr, signal);
  }

  /** Removes what `up` created; returns the names removed. The volume (the database) only when asked. */
  down(options: { volumes: boolean }): Promise<string[]> {
    return down(this.docker, options);
  }

  /** For `scan`: the managed Clair, when its container runs; undefined otherwise. */
  find(secrets: ManagedSecrets | undefined): Promise<ManagedClairEndpoint | undefined> {
    return runningEndpoint(this.docker, secrets);
  }
}
