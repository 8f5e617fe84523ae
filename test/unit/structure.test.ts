// The shape of src/ that keeps the pipeline readable: small modules, settings flowing down from the CLI (no stage
// imports it), and comments about the code as it is rather than the issues it came from.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

const files = sources(SRC).map((file) => ({ rel: path.relative(SRC, file), text: readFileSync(file, 'utf8') }));

describe('src/ structure', () => {
  it('has the pipeline stages as folders', () => {
    const folders = new Set(files.map((f) => f.rel.split(path.sep)[0]));
    for (const stage of ['source', 'save', 'layer-server', 'clair', 'findings', 'policy', 'report', 'scan', 'managed-clair']) {
      assert.ok(folders.has(stage), `src/${stage}/ is missing`);
    }
  });

  it('no file is over 400 lines', () => {
    const long = files.map((f) => ({ rel: f.rel, lines: f.text.split('\n').length - (f.text.endsWith('\n') ? 1 : 0) }))
      .filter((f) => f.lines > 400).map((f) => `${f.rel}: ${f.lines}`);
    assert.deepEqual(long, []);
  });

  it('only the CLI layer and main.ts import from cli/', () => {
    const upward = files.filter((f) => !f.rel.startsWith(`cli${path.sep}`) && f.rel !== 'main.ts')
      .filter((f) => /from '(\.\.\/)+cli\//.test(f.text) || /import\('(\.\.\/)+cli\//.test(f.text)).map((f) => f.rel);
    assert.deepEqual(upward, []);
  });

  it('no comment cites an issue number', () => {
    const cited = files.flatMap((f) => f.text.split('\n').map((line, i) => ({ line, at: `${f.rel}:${i + 1}` })))
      .filter(({ line }) => /\bIssues? #?\d+\b/i.test(line)).map(({ at, line }) => `${at}: ${line.trim()}`);
    assert.deepEqual(cited, []);
  });
});
