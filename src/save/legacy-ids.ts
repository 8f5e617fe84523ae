// Layer identities of a legacy `docker save` (Engine < 25), computed from RootFS.Layers alone.
//
// The legacy exporter names each layer directory by a v1 ID (moby `image/v1/imagev1.go CreateID`, called from
// `image/tarexport/save.go saveImage`): for every layer but the top one it hashes a zero V1Image whose only
// set field is `created` = time.Unix(0, 0), with `layer_id` = the chain ID and `parent` = the previous v1 ID.
// Go marshals that through a map, so the keys come out sorted and the nested container config in struct
// order; every container.Config field added after `Labels` is `omitempty` "to keep getting predictable hashes".
// The top layer hashes the image's own V1Image (config, history …): computable only from its `<v1id>/json`
// (legacyTopV1Id), which tells the tops of several images saved together apart.
import { createHash } from 'node:crypto';

/** `created` as Go marshals time.Unix(0, 0) on a daemon running in UTC (the usual case). */
export const LEGACY_EPOCH_CREATED = '1970-01-01T00:00:00Z';

/** json.Marshal of a zero container.Config: the non-omitempty fields, in struct order. */
export const ZERO_CONTAINER_CONFIG_JSON =
  '{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,' +
  '"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,' +
  '"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}';

function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Chain IDs: `chainID_0 = diffID_0`, `chainID_i = sha256(chainID_{i-1} + " " + diffID_i)`. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  let chain: string | undefined;
  for (const diffId of diffIds) {
    chain = chain === undefined ? diffId : sha256(`${chain} ${diffId}`);
    out.push(chain);
  }
  return out;
}

/** The exact bytes moby hashes for a non-top layer (keys sorted: container_config, created, layer_id, parent). */
export function legacyV1IdInput(chainId: string, parentV1Id: string | undefined, created = LEGACY_EPOCH_CREATED): string {
  const parent = parentV1Id === undefined ? '' : `,"parent":${JSON.stringify(parentV1Id)}`;
  return `{"container_config":${ZERO_CONTAINER_CONFIG_JSON},"created":${JSON.stringify(created)},` +
    `"layer_id":${JSON.stringify(chainId)}${parent}}`;
}

/**
 * The v1 IDs (64 hex characters, the directory names) of every layer but the top one, base first:
 * `diffIds.length - 1` entries. `created` is the marshalled Unix epoch: `1970-01-01T00:00:00Z` unless the
 * daemon runs in another time zone (then read it from any non-top `<v1id>/json`).
 */
export function legacyV1Ids(diffIds: readonly string[], options: { created?: string } = {}): string[] {
  const chains = chainIds(diffIds);
  const ids: string[] = [];
  let parent: string | undefined;
  for (const chain of chains.slice(0, -1)) {
    const id = sha256(legacyV1IdInput(chain, parent, options.created));
    ids.push(id.slice('sha256:'.length));
    parent = id;
  }
  return ids;
}

/**
 * The v1 ID the exporter gives an image's top layer, computed from that layer's `<v1id>/json` as written
 * (`text`, valid JSON) and the image's RootFS.Layers. The json is the image's V1Image marshalled with `id` and
 * `parent` (hex) set; CreateID hashed the same members without `id`, through a map (keys sorted, values as
 * marshalled), with `layer_id` = the chain ID and `parent` = the digest-form parent. So a directory is an
 * image's top exactly when this equals its name: no layer bytes needed to tell the tops of several images apart.
 */
export function legacyTopV1Id(text: string, diffIds: readonly string[]): string | undefined {
  const members = rawMembers(text);
  const chain = chainIds(diffIds).at(-1);
  if (!members || chain === undefined) return undefined;
  members.delete('id');
  members.set('layer_id', JSON.stringify(chain));
  const parent = members.get('parent');
  if (parent !== undefined) {
    const hex: unknown = JSON.parse(parent);
    if (typeof hex !== 'string') return undefined;
    members.set('parent', JSON.stringify(`sha256:${hex}`));
  }
  const keys = [...members.keys()].sort();
  const input = `{${keys.map((key) => `${JSON.stringify(key)}:${members.get(key) as string}`).join(',')}}`;
  return sha256(input).slice('sha256:'.length);
}

/** The members of a JSON object with each value's text exactly as written; undefined if `text` is no object. */
function rawMembers(text: string): Map<string, string> | undefined {
  let i = 0;
  const space = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i] as string)) i++;
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return text.slice(start, i);
  };
  const value = () => {
    const start = i;
    if (text[i] === '"') string();
    else if (text[i] === '{' || text[i] === '[') {
      let depth = 0;
      do {
        const c = text[i];
        if (c === '"') {
          string();
          continue;
        }
        if (c === '{' || c === '[') depth++;
        else if (c === '}' || c === ']') depth--;
        i++;
      } while (depth > 0 && i < text.length);
    } else {
      while (i < text.length && !',}] \t\r\n'.includes(text[i] as string)) i++;
    }
    return text.slice(start, i);
  };
  try {
    JSON.parse(text); // the scan below assumes valid JSON
  } catch {
    return undefined;
  }
  const members = new Map<string, string>();
  space();
  if (text[i] !== '{') return undefined;
  i++;
  for (space(); text[i] !== '}' && i < text.length; space()) {
    const key = JSON.parse(string()) as string;
    space();
    i++; // ':'
    space();
    members.set(key, value());
    space();
    if (text[i] === ',') i++;
  }
  return members;
}
