// `--format FMT[=PATH]` and `--output`: renders each requested format and writes it to stdout or to its
// file. Files are written atomically (a temporary file in the same directory, then rename), so a
// failed or cancelled run never leaves a half-written report for CI to pick up.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ReportWriteError, errnoCode } from '../runtime/errors.js';
import type { OutputSpec } from './formats.js';
import type { Report } from './model.js';
import { WRITERS } from './writers.js';

export interface OutputOptions {
  stdout: NodeJS.WritableStream;
  /** Colour for a table going to stdout; files never get colour. */
  stdoutColor: boolean;
  width?: number;
  cwd?: string;
}

export async function writeReports(report: Report, outputs: readonly OutputSpec[], options: OutputOptions): Promise<void> {
  // Render everything first: a rendering error then leaves no file at all.
  const rendered = outputs.map((o) => {
    const width = o.path ? undefined : options.width;
    const text = WRITERS[o.format](report, {
      color: o.path === undefined && o.format === 'table' && options.stdoutColor,
      ...(width ? { width } : {}),
      hostname: hostname(),
    });
    return { ...o, text };
  });
  for (const output of rendered) {
    const text = output.text.endsWith('\n') ? output.text : `${output.text}\n`;
    if (output.path === undefined) {
      await new Promise<void>((done, fail) => options.stdout.write(text, (e) => (e ? fail(e) : done())));
    } else {
      await writeAtomically(resolve(options.cwd ?? '.', output.path), text);
    }
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temp, text, { mode: 0o644, flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw new ReportWriteError(`cannot write the report to ${path} (${errnoCode(error) ?? (error as Error).message})`,
      'check that the directory is writable, or choose another path', { cause: error });
  }
}
