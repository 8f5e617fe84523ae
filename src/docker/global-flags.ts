// docker's global flags, which choose the daemon: the docker CLI passes them to a plugin unparsed, before the
// plugin's command (plugin/argv.ts splits them off), and endpoint.ts resolves them as docker itself would.

/** docker's global flags, as given before the command (`docker [GLOBAL] clair …`). */
export interface DockerGlobalFlags {
  config?: string;
  context?: string;
  /** -H may be repeated on the command line; more than one is an error at resolution time, as in docker. */
  hosts: string[];
  debug?: boolean;
  logLevel?: string;
  tls?: boolean;
  /** undefined when --tlsverify was not given at all: giving it, even `=false`, turns TLS on. */
  tlsVerify?: boolean;
  tlsCaCert?: string;
  tlsCert?: string;
  tlsKey?: string;
}
