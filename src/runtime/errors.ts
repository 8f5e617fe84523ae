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

export class CancelledError extends DockerClairError {
  readonly code = 'CANCELLED';
  override readonly exitCode = ExitCode.Cancelled;
}

/** The `docker save` stream is not what its format promises: truncated, corrupt, digests mismatching. */
export class ArchiveFormatError extends DockerClairError {
  readonly code: string = 'ARCHIVE_FORMAT';
}

/**
 * A blob or layer that the archive's own manifest.json lists is not in the archive. Saving again does not help
 * when the daemon wrote it so (Engine 26's containerd image store exports an image pulled while the store already
 * had its layers without the blobs it never downloaded), so the source that made the archive words the hint.
 */
export class IncompleteArchiveError extends ArchiveFormatError {
  override readonly code = 'ARCHIVE_INCOMPLETE';
  constructor(
    message: string,
    hint: string | undefined,
    /** The missing entry's digest (`sha256:…`), when its name tells it. */
    readonly missing: string | undefined,
    /** Its path in the archive, as manifest.json gives it. */
    readonly path: string,
  ) {
    super(message, hint);
  }
}

/**
 * The archive holds several images and none is the one asked for. Its own class (with the same code) because a
 * stream can carry only one image: the stream source words that case for its user.
 */
export class MultiImageArchiveError extends ArchiveFormatError {
  constructor(
    message: string,
    hint: string | undefined,
    /** How many images manifest.json lists. */
    readonly images: number,
  ) {
    super(message, hint);
  }
}

/** A registry could not be reached, refused the credentials, or answered what the distribution API does not. */
export class RegistryError extends DockerClairError {
  readonly code = 'REGISTRY';
}

/** The registry's authentication: no or wrong credentials, a token server refusing them. */
export class RegistryAuthError extends DockerClairError {
  readonly code = 'REGISTRY_AUTH';
}

/** The in-process layer server could not start or serve (address not available, port taken …). */
export class LayerServeError extends DockerClairError {
  readonly code = 'LAYER_SERVE';
}

export class ClairUnreachableError extends DockerClairError {
  readonly code = 'CLAIR_UNREACHABLE';
}

/** Clair answered 401: missing or wrong PSK, or an issuer Clair does not accept. */
export class ClairAuthError extends DockerClairError {
  readonly code = 'CLAIR_AUTH';
}

/**
 * Why Clair failed to index, decided once where Clair's answer is read (the Clair clients), so that callers test
 * a field and never Clair's wording. `said` is Clair's own account, as a message quotes it.
 */
export type ClairIndexFailure =
  /** Clair could not open a connection to the layer URL (refused, no route, timed out). */
  | { reason: 'connect-failed'; said: string }
  /** Clair's layer fetch failed in another way (reset, a bad status, a cut body). */
  | { reason: 'fetch-failed'; said: string }
  /** The bytes Clair fetched do not hash to the layer's digest: `got` and `expected` are hex. */
  | { reason: 'digest-mismatch'; said: string; got: string; expected: string }
  | { reason: 'busy' | 'timed-out' | 'proxy-cut' | 'unknown-parent' | 'unreadable-layer' | 'other' };

/** Clair failed to index the image; carries Clair's own message (often a layer fetch failure). */
export class ClairIndexError extends DockerClairError {
  readonly code = 'CLAIR_INDEX';
  readonly failure: ClairIndexFailure;
  constructor(message: string, hint?: string, options?: ErrorOptions & { failure?: ClairIndexFailure }) {
    super(message, hint, options);
    this.failure = options?.failure ?? { reason: 'other' };
  }
}

/** Clair answered with a status or a body that the protocol does not allow. */
export class ClairProtocolError extends DockerClairError {
  readonly code = 'CLAIR_PROTOCOL';
}

/** --timeout elapsed. */
export class TimeoutError extends DockerClairError {
  readonly code = 'TIMEOUT';
}

/**
 * A legacy (Engine < 25) save: a `<v1id>/` directory whose layer could not be identified before its bytes
 * arrived (its v1 ID is neither computed from the diffIDs nor the top layer's). Not a corrupt archive: the
 * caller can hash the archive in a first pass (save/hash-pass.ts) and read it again with those digests.
 */
export class LegacyLayerMappingError extends DockerClairError {
  readonly code = 'LEGACY_LAYER_MAPPING';
}

/** A report could not be written where --format FMT=PATH or --output asked. */
export class ReportWriteError extends DockerClairError {
  readonly code = 'REPORT_WRITE';
}

/** The errno-style code of a Node error (ECONNREFUSED, ENOENT …), if any. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The managed Clair (`docker clair server …`) cannot be created, started, reached or found. */
export class ManagedClairError extends DockerClairError {
  readonly code = 'MANAGED_CLAIR';
}

/** The managed Clair answers, but its first vulnerability update has not finished: no scan can be trusted yet. */
export class ManagedClairNotUpdatedError extends DockerClairError {
  readonly code = 'MANAGED_CLAIR_NOT_UPDATED';
  override readonly exitCode = ExitCode.Untrusted;
}
