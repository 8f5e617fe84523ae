// argv → exit code. Parses, runs the chosen command, and turns every error into one line on stderr
// (message and hint) and its exit code. With -D the cause chain follows.
import type { Readable } from 'node:stream';
import { DockerClairError, ExitCode } from '../runtime/errors.js';
import { createLogger } from '../runtime/log.js';
import { VERSION } from '../version.js';
import { parseCommandLine } from './app.js';

export interface CliIo {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdin?: Readable;
  stdout: NodeJS.WritableStream & { columns?: number };
  stderr: NodeJS.WritableStream;
  stdoutIsTTY?: boolean;
  stderrIsTTY?: boolean;
  /** Aborted on SIGINT/SIGTERM or when the docker CLI asks the plugin to stop. */
  signal?: AbortSignal;
}

export async function runCli(io: CliIo): Promise<number> {
  let debug = io.argv.includes('-D') || io.argv.includes('--debug');
  try {
    const { invocation, globals } = await parseCommandLine(io.argv, io.env, io.stdout.columns);
    debug = Boolean(globals.debug) || globals.logLevel === 'debug';
    switch (invocation.kind) {
      case 'text':
        io.stdout.write(invocation.text.endsWith('\n') ? invocation.text : `${invocation.text}\n`);
        return ExitCode.Pass;
      case 'version':
        io.stdout.write(`docker-clair version ${VERSION} (node ${process.version}, ${process.platform}/${process.arch})\n`);
        return ExitCode.Pass;
      case 'scan': {
        const { runScan } = await import('../scan/run.js');
        const log = createLogger(io.stderr, { debug, quiet: invocation.options.quiet });
        return await runScan(invocation.options, globals, {
          env: io.env,
          ...(io.stdin ? { stdin: io.stdin } : {}),
          stdout: io.stdout,
          stderr: io.stderr,
          stdoutIsTTY: Boolean(io.stdoutIsTTY),
          stderrIsTTY: Boolean(io.stderrIsTTY),
          columns: io.stdout.columns,
          log,
          signal: io.signal ?? new AbortController().signal,
        });
      }
      case 'server': {
        const { runServer } = await import('../managed-clair/run.js');
        const log = createLogger(io.stderr, { debug });
        return await runServer(invocation.options, globals, {
          env: io.env, stdout: io.stdout, stderr: io.stderr, log, signal: io.signal ?? new AbortController().signal,
        });
      }
    }
  } catch (error) {
    reportError(io.stderr, error, debug);
    return error instanceof DockerClairError ? error.exitCode : ExitCode.Error;
  }
}

function reportError(stderr: NodeJS.WritableStream, error: unknown, debug: boolean): void {
  if (error instanceof DockerClairError) {
    const hint = error.hint ? `; hint: ${error.hint}` : '';
    stderr.write(`docker-clair: ${oneLine(error.message)}${hint}\n`);
  } else {
    stderr.write(`docker-clair: internal error: ${oneLine(String((error as Error)?.message ?? error))}; ` +
      'hint: rerun with -D for details and report it\n');
  }
  if (debug) {
    let cause: unknown = error;
    while (cause) {
      stderr.write(`${(cause as Error).stack ?? String(cause)}\n`);
      cause = (cause as Error).cause;
      if (cause) stderr.write('caused by: ');
    }
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
