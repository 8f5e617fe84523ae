// Clair v1 (Clair 1.x/2.x, `/v1/...`) wire shapes, spelled as Clair spells them: PascalCase keys, every one
// `omitempty` (quay/clair v2.0.x api/v1/models.go). Interfaces only; parse guards live in parse.ts.

/** POST /v1/layers body: `{"Layer": LayerRequest}`. */
export interface LayerRequest {
  /** Globally unique; docker-clair uses the chain ID hex of the layer (its digest and its parents'). */
  Name: string;
  /** The URL Clair fetches the layer from (any 2xx accepted, no digest check). */
  Path: string;
  /** One value per header name (v1 has no multi-valued headers). */
  Headers?: Record<string, string>;
  /** The previous layer's Name; empty for the base layer. Clair answers 400 when it is unknown. */
  ParentName?: string;
  Format: 'Docker';
}

export interface Vulnerability {
  Name: string;
  NamespaceName?: string;
  Description?: string;
  Link?: string;
  /** Unknown, Negligible, Low, Medium, High, Critical or Defcon1. */
  Severity?: string;
  Metadata?: Record<string, unknown>;
  /** Omitted when there is no fix. */
  FixedBy?: string;
}

export interface Feature {
  /** For dpkg: the SOURCE package name. */
  Name: string;
  NamespaceName?: string;
  VersionFormat?: string;
  Version?: string;
  /** The Name of the layer that introduced the feature. */
  AddedBy?: string;
  Vulnerabilities?: Vulnerability[];
}

/** GET /v1/layers/{name}?features&vulnerabilities: `{"Layer": Layer}`. */
export interface Layer {
  Name: string;
  NamespaceName?: string;
  ParentName?: string;
  IndexedByVersion?: number;
  Features?: Feature[];
}

/** GET /v1/namespaces. */
export interface Namespace {
  Name: string;
  VersionFormat?: string;
}

/** GET /v1/namespaces/{ns}/vulnerabilities?limit=N. */
export interface VulnerabilityPage {
  Vulnerabilities: Vulnerability[];
  NextPage?: string;
}

/** Every v1 error: `{"Error":{"Message":"…"}}`. */
export interface ErrorBody {
  Message?: string;
  Type?: string;
}
