// `--format FMT[=PATH]` and `--output`: renders each requested format and writes it to stdout or to its
// file. Files are written atomically (a temporary file in the same directory, then rename), so a
// failed or cancelled run never leaves a half-written report for CI to pick up.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Format, OutputSpec } from './formats.js';
import { ReportWriteError, errnoCode } from '../runtime/errors.js';
import { renderJson } from './json.js';
import { renderJunit } from './junit.js';
import type { Report } from './model.js';
import { renderSarif } from './sarif.js';
import { renderTable } from './table.js';

export interface OutputOptions {
  stdout: NodeJS.WritableStream;
  /** Colour for a table going to stdout; files never get colour. */
  stdoutColor: boolean;
  width?: number;
  cwd?: string;
}

export const IMPLEMENTED_FORMATS: ReadonlySet<Format> = new Set<Format>(['table', 'json', 'junit', 'sarif']);

export function render(format: Format, report: Report, color: boolean, width?: number): string {
  switch (format) {
    case 'table':
      return renderTable(report, { color, ...(width ? { width } : {}) });
    case 'json':
      return renderJson(report);
    case 'junit':
      // The host name is the caller's to give (renderers read no environment); the Ant XSD requires one.
      return renderJunit(report, { hostname: hostname() });
    case 'sarif':
      return renderSarif(report);
  }
}

export async function writeReports(report: Report, outputs: readonly OutputSpec[], options: OutputOptions): Promise<void> {
  // Render everything first: a rendering error then leaves no file at all.
  const rendered = outputs.map((o) => ({
    ...o,
    text: render(o.format, report, o.path === undefined && o.format === 'table' && options.stdoutColor, o.path ? undefined : options.width),
  }));
  for (const output of rendered) {
    const text = output.text.endsWith('\n') ? output.text : `${output.text}\n`;
    if (output.path === undefined) {
      await new Promise<void>((done, fail) => options.stdout.write(text, (e) => (e ? fail(e) : done())));
    } else {
      await writeAtomically(resolve(options.cwd ?? '.', output.path), text);
    }
  }
}

export async function writeAtomically(path: string, text: string): Promise<void> {
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
