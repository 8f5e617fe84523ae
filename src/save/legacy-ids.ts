// Layer identities of a legacy `docker save` (Engine < 25), computed from RootFS.Layers alone.
//
// The legacy exporter names each layer directory by a v1 ID (moby `image/v1/imagev1.go CreateID`, called from
// `image/tarexport/save.go saveImage`): for every layer but the top one it hashes a zero V1Image whose only
// set field is `created` = time.Unix(0, 0), with `layer_id` = the chain ID and `parent` = the previous v1 ID.
// Go marshals that through a map, so the keys come out sorted and the nested container config in struct
// order; every container.Config field added after `Labels` is `omitempty` "to keep getting predictable hashes".
// The top layer hashes the image's own V1Image (config, history …) and is not computable here.
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
