// Every failure a user can act on has its own class, a stable code, a one-line message and a hint.
// The exit code travels with the error and is acted on only in cli/run.ts.

export const ExitCode = {
  /** No finding at or above --fail-on. */
  Pass: 0,
  /** Findings at or above --fail-on. */
  Fail: 1,
  /** The scan could not run: bad input, unreachable daemon or Clair, protocol error. */
  Error: 2,
  /** The scan ran but its verdict cannot be trusted (empty Clair database, unsupported OS, nothing indexed). */
  Untrusted: 3,
  /** Cancelled by SIGINT/SIGTERM or the docker CLI (shell convention 128 + SIGINT). */
  Cancelled: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export abstract class DockerClairError extends Error {
  abstract readonly code: string;
  readonly exitCode: ExitCode = ExitCode.Error;
  constructor(
    message: string,
    readonly hint?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command line: unknown option, bad value, missing argument. */
export class UsageError extends DockerClairError {
  readonly code = 'USAGE';
}

/** The Docker endpoint cannot be resolved: bad -H/DOCKER_HOST, unknown context, unreadable TLS files. */
export class EndpointError extends DockerClairError {
  readonly code = 'ENDPOINT';
}

export class DaemonUnreachableError extends DockerClairError {
  readonly code = 'DAEMON_UNREACHABLE';
}

/** The daemon answered, but with an error we did not expect (not "image not found"). */
export class DaemonError extends DockerClairError {
  readonly code = 'DAEMON';
}

export class ImageNotFoundError extends DockerClairError {
  readonly code = 'IMAGE_NOT_FOUND';
}

/** A feature the command line accepts but this build does not implement yet. */
export class NotImplementedError extends DockerClairError {
  readonly code = 'NOT_IMPLEMENTED';
}

export class CancelledError extends DockerClairError {
  readonly code = 'CANCELLED';
  override readonly exitCode = ExitCode.Cancelled;
}

/** The errno-style code of a Node error (ECONNREFUSED, ENOENT …), if any. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
