// Made-up vulnerability data for the real Clair: advisories for the packages a Debian 12 image actually holds,
// written in the format `clairctl export-updaters` writes and `clairctl import-updaters` reads (claircore's
// libvuln/jsonblob: one JSON object per line, gzip'd). Versions come from the image itself, so the file fits
// whatever point release the test image was built from, and the expected findings come from the file: an
// advisory affects the image when Clair's Debian matcher rules say so (quay/claircore debian/matcher.go).
//
//   tsx test/helpers/vuln-file.ts IMAGE OUT.jsonl.gz     writes the file for IMAGE (a Debian 12 image)
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { compareDebVersions } from '../double/dpkg-version.js';

export interface InstalledPackage {
  name: string;
  version: string;
  source: string;
}

export type Severity = 'Unknown' | 'Negligible' | 'Low' | 'Medium' | 'High' | 'Critical';

export interface Advisory {
  id: string;
  /** A source package name, as Debian's security tracker keys its advisories. */
  package: string;
  /** '' = not fixed yet; '0' = Debian's "this release is not affected". */
  fixedIn: string;
  severity: Severity;
  /** Debian release codename the advisory is for. */
  release: 'bookworm' | 'bullseye';
  why: string;
}

/** The matcher Clair v4.9 runs for Debian images, and its updater's name. */
const UPDATER = 'debian/updater';
const RELEASES = { bookworm: 12, bullseye: 11 } as const;
const VENDOR_SEVERITY: Record<Severity, string> = {
  Unknown: 'not yet assigned', Negligible: 'unimportant', Low: 'low', Medium: 'medium', High: 'high', Critical: 'critical',
};

/** `dpkg-query -W` inside the image: its installed packages with their source packages. */
export function installedPackages(image: string, dockerHost?: string): InstalledPackage[] {
  const args = [...(dockerHost ? ['-H', dockerHost] : []), 'run', '--rm', '--network', 'none', '--entrypoint', 'dpkg-query', image,
    '-W', '-f', '${Package}\\t${Version}\\t${source:Package}\\n'];
  const out = execFileSync('docker', args, { encoding: 'utf8' });
  return out.trim().split('\n').map((line) => {
    const [name, version, source] = line.split('\t');
    return { name: name!, version: version!, source: source || name! };
  });
}

function newestOf(packages: InstalledPackage[], source: string): string {
  const versions = packages.filter((p) => p.source === source).map((p) => p.version);
  if (versions.length === 0) throw new Error(`the image has no binary package of source ${source}`);
  return versions.sort(compareDebVersions).at(-1)!;
}

/** The advisories for an image: every severity, fixed and unfixed ones, and four that must not match. */
export function advisoriesFor(packages: InstalledPackage[]): Advisory[] {
  const newer = (source: string) => `${newestOf(packages, source)}+fix1`;
  let n = 1000;
  const id = () => `CVE-2099-${++n}`;
  return [
    { id: id(), package: 'glibc', fixedIn: newer('glibc'), severity: 'Critical', release: 'bookworm', why: 'fixed in a newer version' },
    { id: id(), package: 'zlib', fixedIn: '', severity: 'High', release: 'bookworm', why: 'not fixed yet' },
    { id: id(), package: 'tar', fixedIn: newer('tar'), severity: 'Medium', release: 'bookworm', why: 'fixed in a newer version' },
    { id: id(), package: 'sed', fixedIn: '', severity: 'Low', release: 'bookworm', why: 'not fixed yet' },
    { id: id(), package: 'gzip', fixedIn: newer('gzip'), severity: 'Negligible', release: 'bookworm', why: 'fixed in a newer version' },
    { id: id(), package: 'dash', fixedIn: '', severity: 'Unknown', release: 'bookworm', why: 'not fixed yet' },
    { id: id(), package: 'coreutils', fixedIn: '0.1-1', severity: 'High', release: 'bookworm', why: 'fixed before the installed version' },
    { id: id(), package: 'util-linux', fixedIn: '0', severity: 'Critical', release: 'bookworm', why: 'Debian: this release not affected' },
    { id: id(), package: 'nginx', fixedIn: '', severity: 'Critical', release: 'bookworm', why: 'package not in the image' },
    { id: id(), package: 'zlib', fixedIn: '', severity: 'Critical', release: 'bullseye', why: 'another Debian release' },
  ];
}

/** The installed packages an advisory affects, by the Debian matcher's rules; empty = it does not match. */
export function affectedBy(advisory: Advisory, packages: InstalledPackage[], release: keyof typeof RELEASES = 'bookworm'): InstalledPackage[] {
  if (advisory.release !== release || advisory.fixedIn === '0') return [];
  return packages.filter((p) => (p.source === advisory.package || p.name === advisory.package) &&
    (advisory.fixedIn === '' || compareDebVersions(p.version, advisory.fixedIn) < 0));
}

/** The ids of the advisories that affect the image, sorted. */
export function expectedIds(advisories: Advisory[], packages: InstalledPackage[]): string[] {
  return advisories.filter((a) => affectedBy(a, packages).length > 0).map((a) => a.id).sort();
}

/** The jsonblob lines: one update operation of Debian's updater holding every advisory. */
export function jsonblob(advisories: Advisory[], date = new Date()): string {
  const ref = randomUUID();
  const fingerprint = `docker-clair-test-${ref}`;
  return advisories.map((a) => {
    const ver = RELEASES[a.release];
    const vuln = {
      id: '', updater: UPDATER, name: a.id,
      description: `Made-up advisory for docker-clair's tests (${a.why}).`,
      issued: date.toISOString(), links: `https://security-tracker.debian.org/tracker/${a.id}`,
      severity: VENDOR_SEVERITY[a.severity], normalized_severity: a.severity,
      package: { id: '', name: a.package, version: '', kind: 'source', normalized_version: '', cpe: '' },
      // The distribution exactly as claircore's Debian updater writes it (debian/releases.go).
      distribution: {
        id: '', did: 'debian', name: 'Debian GNU/Linux', version: `${ver} (${a.release})`, version_code_name: a.release,
        version_id: String(ver), arch: '', cpe: '', pretty_name: `Debian GNU/Linux ${ver} (${a.release})`,
      },
      fixed_in_version: a.fixedIn,
    };
    return JSON.stringify({ Updater: UPDATER, Fingerprint: fingerprint, Date: date.toISOString(), Ref: ref, Vuln: vuln, Kind: 'vulnerability' });
  }).join('\n') + '\n';
}

/** Writes the gzip'd file for an image's packages; returns the advisories and the ids expected to match. */
export function writeVulnFile(path: string, packages: InstalledPackage[], date?: Date): { advisories: Advisory[]; expected: string[] } {
  const advisories = advisoriesFor(packages);
  writeFileSync(path, gzipSync(jsonblob(advisories, date)));
  return { advisories, expected: expectedIds(advisories, packages) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [image, out] = process.argv.slice(2);
  if (!image || !out) {
    console.error('usage: tsx test/helpers/vuln-file.ts IMAGE OUT.jsonl.gz');
    process.exit(2);
  }
  const { expected } = writeVulnFile(out, installedPackages(image));
  console.log(`wrote ${out}: expected to match ${expected.join(' ')}`);
}
