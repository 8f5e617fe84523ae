// An image reference as the docker CLI reads it (distribution/reference): `[host[:port]/]path[:tag][@digest]`. The
// first path component is a registry host when it has a `.` or a `:`, or is `localhost`; otherwise the image is on
// Docker Hub, whose one-word names live under `library/`. Without tag or digest the tag is `latest`.
import { isLoopbackName } from '../runtime/cidr.js';
import { UsageError } from '../runtime/errors.js';

export interface RemoteReference {
  /** The reference as given. */
  given: string;
  /** host[:port] requests go to (`registry-1.docker.io` for Docker Hub). */
  registry: string;
  /** host[:port] credentials are looked up under and messages name (`docker.io` for Docker Hub). */
  host: string;
  /** The repository path, e.g. `team/app`, `library/debian`. */
  repository: string;
  tag?: string;
  digest?: string;
}

const HUB = 'docker.io';
const HUB_REGISTRY = 'registry-1.docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?$/;

export function parseRemoteReference(given: string): RemoteReference {
  const invalid = (why: string) => new UsageError(`invalid image reference "${given}": ${why}`,
    'give [registry[:port]/]repository[:tag][@sha256:digest], e.g. registry.example.com/team/app:1.2');
  let rest = given;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(`"${digest}" is not a digest`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(`"${tag}" is not a tag`);
  }
  const parts = rest.split('/');
  const first = parts[0] ?? '';
  const hasHost = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasHost && !HOST.test(first)) throw invalid(`"${first}" is not a registry host`);
  let host = hasHost ? first : HUB;
  let path = (hasHost ? parts.slice(1) : parts).join('/');
  if (host === 'index.docker.io') host = HUB;
  if (host === HUB && !path.includes('/')) path = `library/${path}`;
  if (path === '' || !path.split('/').every((c) => COMPONENT.test(c))) throw invalid('the repository name must be lowercase letters, digits and separators');
  return {
    given,
    registry: host === HUB ? HUB_REGISTRY : host,
    host,
    repository: path,
    ...(tag !== undefined || digest === undefined ? { tag: tag ?? 'latest' } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

/** `host/repository`, as RepoDigests name an image (Docker Hub's shortened as the docker CLI shows it). */
export function familiarName(ref: RemoteReference): string {
  if (ref.host !== HUB) return `${ref.host}/${ref.repository}`;
  return ref.repository.startsWith('library/') ? ref.repository.slice('library/'.length) : ref.repository;
}

/** Loopback registries are reached over plain http, as the daemon allows them by default. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return isLoopbackName(name);
}
