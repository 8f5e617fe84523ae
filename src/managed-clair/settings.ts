// What a `docker clair server` command asks for, one variant per action: the CLI builds it from its options.
export type ServerSettings =
  | { action: 'up'; clairImage: string; postgresImage: string; port: number; wait: boolean; timeoutMs: number; quiet: boolean; importFile?: string }
  | { action: 'import'; file: string; timeoutMs: number; quiet: boolean }
  | { action: 'status'; format: 'text' | 'json' }
  | { action: 'logs'; follow: boolean; tail?: number; postgres: boolean }
  | { action: 'down'; volumes: boolean };
