// The files Clair 1.x and 2.x read from a layer. Each detector declares the paths it needs and the worker
// extracts only those from the layer's tar; every other entry is skipped unread. So a layer reduced to its
// entries among these paths gives Clair v1 the same namespace and the same features as the whole layer.
//
// Read in quay/clair:
//   1.2.x  worker/detectors/namespace/{osrelease,lsbrelease,aptsources,redhatrelease,alpinerelease}/*.go and
//          worker/detectors/feature/{dpkg,rpm,apk}/*.go (GetRequiredFiles); utils/tar.go
//          SelectivelyExtractArchive matches with strings.HasPrefix after trimming one leading "./".
//   2.0.x, 2.1.x  ext/featurens/{osrelease,lsbrelease,aptsources,redhatrelease,alpinerelease}/*.go and
//          ext/featurefmt/{dpkg,rpm,apk}/*.go (RequiredFilenames); pkg/tarutil/tarutil.go ExtractFiles matches
//          with regexp.MatchString("^" + pattern) after trimming one leading "./" (a prefix match; some
//          patterns are regexps: `^(etc|usr/lib)/os-release`, `^etc/(oracle|centos|redhat|system)-release`).
// Both read symlinks, hard links and regular files among the matches and interpret no whiteouts (`.wh.` names
// never match), so the reduced layer keeps every matching entry whatever its type, headers intact.
// `root/buildinfo` and `var/lib/pacman/local/` are read by listers on Clair's development branch after 2.1; kept
// because they cost nothing in images without them.

/** The patterns, as Clair 2 applies them: anchored at the start of the name, `.` matching any character. */
export const CLAIR_V1_FILES: readonly string[] = [
  'var/lib/dpkg/status',
  'var/lib/rpm/Packages',
  'lib/apk/db/installed',
  'etc/os-release',
  'usr/lib/os-release',
  'etc/lsb-release',
  'etc/apt/sources.list',
  'etc/redhat-release',
  'etc/centos-release',
  'etc/system-release',
  'etc/oracle-release',
  'etc/alpine-release',
  'root/buildinfo',
  'var/lib/pacman/local/',
];

// A superset of 1.x's literal prefixes too: the only regexp metacharacter in the list is `.`.
const MATCH = new RegExp(`^(?:${CLAIR_V1_FILES.join('|')})`);

/** Whether Clair v1 reads the tar entry named `name` (as stored in the layer's tar header). */
export function clairV1Reads(name: string): boolean {
  return MATCH.test(name.startsWith('./') ? name.slice(2) : name);
}
