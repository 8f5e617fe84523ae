// Wire types of `docker save` / `GET /images/{name}/get` archives, spelled as the producers write them: moby's
// legacy exporter (Engine < 25, moby/moby image/tarexport/save.go at v24), its OCI layout + manifest.json
// (Engine >= 25, graphdriver store, moby/moby daemon/internal/image/tarexport/save.go), and containerd's exporter
// (containerd image store: moby/moby daemon/containerd/image_exporter.go, containerd core/images/archive/exporter.go).
// Interfaces only; import as a namespace: `import type * as Save from './format.js'`.

/** `manifest.json`: one item per saved image. */
export type Manifest = ManifestItem[];

export interface ManifestItem {
  /** Legacy: `<hex>.json`; OCI/containerd: `blobs/sha256/<hex>`. */
  Config: string;
  /** `null` when the image was saved by ID. */
  RepoTags: string[] | null;
  /** Base layer first. Legacy: `<v1id>/layer.tar`; OCI/containerd: `blobs/sha256/<hex>`. */
  Layers: string[];
  /** Engine >= 25: the parent image ID, when the saved set contains it. */
  Parent?: string;
  /** Foreign (non-distributable) layers, keyed by diffID. */
  LayerSources?: Record<string, Descriptor>;
}

/** `repositories` (legacy and Engine >= 25 graphdriver): name → tag → top layer v1 ID (hex). */
export type Repositories = Record<string, Record<string, string>>;

/** `oci-layout`. */
export interface OciLayout {
  imageLayoutVersion: string;
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

/** `index.json`, and image index blobs (the target of a multi-platform image in the containerd store). */
export interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
}

/** An OCI image manifest blob (or a Docker schema 2 manifest, which has the same shape). */
export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
}

/** The image config blob (`<hex>.json` in legacy saves): only what the archive reader looks at. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  rootfs: { type: string; diff_ids: string[] };
}

/**
 * The v1 image JSON of a legacy layer directory (`<v1id>/json`), also written as a blob by Engine >= 25.
 * Below the top layer it is the zero form: `id`, `parent`, `created` (the Unix epoch), a zero
 * `container_config` and `os`; the top layer carries the image's own fields as well.
 */
export interface V1Json {
  id: string;
  parent?: string;
  comment?: string;
  created?: string;
  container?: string;
  container_config?: ContainerConfig;
  docker_version?: string;
  author?: string;
  config?: ContainerConfig;
  architecture?: string;
  variant?: string;
  os?: string;
  Size?: number;
}

/** moby `api/types/container.Config`, as marshalled (fields after `Labels` are `omitempty`). */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[] | null;
  Cmd: string[] | null;
  Healthcheck?: object;
  ArgsEscaped?: boolean;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  NetworkDisabled?: boolean;
  MacAddress?: string;
  OnBuild: string[] | null;
  Labels: Record<string, string> | null;
  StopSignal?: string;
  StopTimeout?: number;
  Shell?: string[];
}
