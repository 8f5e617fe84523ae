// The table format against golden files, from the same fixed findings models as the JUnit and SARIF goldens
// (hostile text included), plus the build-step legend read from the image history.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { layerSteps } from '../../src/source/build-steps.js';
import type { Report } from '../../src/report/model.js';
import { describeStep, renderTable } from '../../src/report/table.js';
import { CASES, LAYER } from '../fixtures/report-fixtures.js';
import { assertGolden } from '../helpers/report-formats.js';

/** The vulnerable case with the history of its one layer known. */
function withSteps(report: Report): Report {
  return {
    ...report,
    images: report.images.map((o) =>
      o.kind === 'scanned' ? { ...o, scan: { ...o.scan, layers: [{ digest: LAYER, createdBy: '/bin/sh -c apt-get install -y openssl bash \u001b[31m' }] } } : o),
  };
}

describe('table goldens', () => {
  for (const [name, report] of Object.entries(CASES)) {
    it(`${name}: plain, 120 columns`, () => {
      const text = renderTable(report, { color: false, width: 120 });
      assert.doesNotMatch(text, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no control characters reach the terminal');
      assertGolden(`${name}.table.txt`, `${text}\n`);
    });
  }

  it('lists the build step of each layer that introduced a finding', () => {
    const text = renderTable(withSteps(CASES.vulnerable), { color: false, width: 120 });
    assert.match(text, /\nLayers:\n {2}aaaaaaaaaaaa {2}RUN apt-get install -y openssl bash/);
    assertGolden('vulnerable-steps.table.txt', `${text}\n`);
  });
});

describe('image history → layer steps', () => {
  const history = [
    { CreatedBy: '/bin/sh -c #(nop)  CMD ["bash"]', Size: 0 },
    { CreatedBy: '/bin/sh -c rm /usr/share/doc/hostname/copyright', Size: 0 },
    { CreatedBy: '/bin/sh -c dpkg -i /x.deb', Size: 4096 },
    { CreatedBy: '/bin/sh -c #(nop) COPY dir:abc in /opt/x ', Size: 172_000 },
    { CreatedBy: '/bin/sh -c #(nop)  ENV A=1', Size: 0 },
    { CreatedBy: '', Size: 115_800_000 },
  ];
  const layers = ['sha256:base', 'sha256:copy', 'sha256:dpkg', 'sha256:rm'];

  it('pairs the steps that make layers with RootFS.Layers, base first (a 0-byte RUN still makes one)', () => {
    assert.deepEqual(layerSteps(history, layers)?.map((l) => [l.digest, describeStep(l.createdBy)]), [
      ['sha256:base', '(base layer, no build step recorded)'],
      ['sha256:copy', 'COPY dir:abc in /opt/x'],
      ['sha256:dpkg', 'RUN dpkg -i /x.deb'],
      ['sha256:rm', 'RUN rm /usr/share/doc/hostname/copyright'],
    ]);
  });

  it('BuildKit metadata steps make no layer', () => {
    const buildkit = [{ CreatedBy: 'CMD ["app"]', Size: 0 }, { CreatedBy: 'RUN /bin/sh -c make # buildkit', Size: 10 }, { CreatedBy: 'ENV A=1', Size: 0 }, { CreatedBy: '', Size: 5 }];
    assert.deepEqual(layerSteps(buildkit, ['sha256:a', 'sha256:b'])?.map((l) => describeStep(l.createdBy)), [
      '(base layer, no build step recorded)',
      'RUN /bin/sh -c make',
    ]);
  });

  it('does not guess when the counts disagree', () => {
    assert.equal(layerSteps(history, layers.slice(1)), undefined);
  });
});
