// Clair names vulnerabilities inconsistently across updaters and versions ("CVE-2024-1", "RHSA-2023:5837: nghttp2
// security update (Important)", "pyup.io-39606 (CVE-2020-36242)", a bare title). One rule, for v4 and v1 alike,
// turns a name into an id (and a title when the name says more).

// An advisory identifier: an upper-case scheme, a dash, then something with a digit (CVE-2024-1, RHSA-2023:5837,
// GHSA-jq35-85cj-fj4p, DSA-5555-1, ALAS2-2023-2000, USN-6000-1, GO-2023-1234).
const ADVISORY = /^[A-Z][A-Z0-9]*(?:-[A-Za-z0-9]+)*-[A-Za-z0-9]*\d[A-Za-z0-9]*(?:[:.-][A-Za-z0-9]+)*$/;
const CVE = /\bCVE-\d{4}-\d{4,}\b/g;

export function advisoryId(name: string, links: string[], clairId: string): { id: string; title?: string } {
  const text = name.trim();
  if (ADVISORY.test(text)) return { id: text };
  const first = (text.split(/\s/, 1)[0] ?? '').replace(/:$/, '');
  if (first !== text && ADVISORY.test(first)) return { id: first, title: text };
  if (/^[A-Za-z0-9.]+-\S+( \(\S+\))?$/.test(text)) return { id: text }; // already an id, e.g. pyup.io-38765 (CVE-…)
  const cves = [...new Set(links.flatMap((l) => l.match(CVE) ?? []))];
  const cve = cves[0];
  if (cve !== undefined && cves.length === 1) return text === '' ? { id: cve } : { id: cve, title: text };
  return { id: text !== '' ? text : clairId };
}
