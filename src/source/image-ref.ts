// Images of a `docker save` archive by the reference the user gives: a tag, an image ID or an ID prefix, matched
// as the docker CLI would (its default registry, namespace and tag spelled out).

/** What an archive says of an image that a reference can name. */
export interface NamedImage {
  /** The config digest. */
  id: string;
  repoTags: readonly string[];
}

/** `name[:tag]` with the docker CLI's defaults spelled out: `docker.io/library/debian:latest`. */
function fullRef(ref: string): string {
  const at = ref.indexOf('@');
  const name = at < 0 ? ref : ref.slice(0, at);
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  const tagged = colon > slash ? name : `${name}:latest`;
  const first = tagged.split('/')[0] ?? '';
  const domain = tagged.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (domain) return tagged;
  return `docker.io/${tagged.includes('/') ? tagged : `library/${tagged}`}`;
}

/** Whether `ref` (a tag, an image ID or an ID prefix) names `image`. */
export function refMatches(ref: string, image: NamedImage): boolean {
  const id = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(ref);
  if (id && image.id.startsWith(`sha256:${id[1]}`)) return true;
  const want = fullRef(ref);
  return image.repoTags.some((tag) => fullRef(tag) === want);
}

/** The images for a message: first tag (or "(untagged)") and short ID of each. */
export function describeImages(images: readonly NamedImage[]): string {
  return images.map((i) => `${i.repoTags[0] ?? '(untagged)'} ${i.id.slice(0, 19)}`).join(', ');
}
