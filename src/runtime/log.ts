// A small leveled logger writing to a given stream (stderr in production, a buffer in tests).
// stdout is reserved for reports.

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  readonly debugEnabled: boolean;
}

export interface LoggerOptions {
  debug?: boolean;
  quiet?: boolean;
}

export function createLogger(stream: NodeJS.WritableStream, options: LoggerOptions = {}): Logger {
  const write = (line: string) => stream.write(`${line}\n`);
  return {
    debugEnabled: Boolean(options.debug),
    debug: (message) => {
      if (options.debug) write(`debug: ${message}`);
    },
    info: (message) => {
      if (!options.quiet) write(message);
    },
    warn: (message) => write(`warning: ${message}`),
  };
}
