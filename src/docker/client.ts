// Turns a resolved Endpoint into a dockerode client. docker-modem reads DOCKER_HOST, DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH itself on every construction, lets them override explicit options, and throws when a
// DOCKER_CERT_PATH file is missing even for a unix socket (docker-modem lib/modem.js). The endpoint was already
// resolved with the docker CLI's rules, so the modem is built with those variables hidden from it.
import type { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type Dockerode from 'dockerode';
import type { Endpoint } from './endpoint.js';
import { SshDialAgent } from './ssh-dial-agent.js';

const MODEM_ENV = [
  'DOCKER_HOST',
  'DOCKER_TLS_VERIFY',
  'DOCKER_CERT_PATH',
  'DOCKER_CLIENT_TIMEOUT',
  'DOCKER_PATH_PREFIX',
] as const;

/** docker-modem takes an `agent` option that @types/dockerode does not declare. */
export type ModemOptions = Dockerode.DockerOptions & { agent?: HttpAgent };

/** dockerode constructor options for an endpoint: a complete set, so nothing is left for the modem to guess. */
export function dockerodeOptions(endpoint: Endpoint): ModemOptions {
  const t = endpoint.transport;
  const base: ModemOptions = {
    host: undefined,
    port: undefined,
    socketPath: undefined,
    protocol: 'http',
    ca: undefined,
    cert: undefined,
    key: undefined,
    // No idle timeout: the daemon stages a whole export before sending its first byte
    // (moby/moby daemon/internal/image/tarexport/save.go writes it to a docker-export-* temp dir first).
    timeout: undefined,
  };
  switch (t.kind) {
    case 'unix':
    case 'npipe':
      return { ...base, socketPath: t.path };
    case 'tcp': {
      if (!endpoint.tls) return { ...base, host: t.hostname, port: t.port };
      const { ca, cert, key, verify } = endpoint.tls;
      // The agent carries rejectUnauthorized, which the modem does not pass on by itself.
      const agent = new HttpsAgent({ ca, cert, key, rejectUnauthorized: verify, keepAlive: false });
      return { ...base, host: t.hostname, port: t.port, protocol: 'https', ca, cert, key, agent };
    }
    case 'ssh':
      // Requests are addressed to a dummy host; the agent dials ssh for each connection.
      return { ...base, host: 'docker.example.com', port: 80, protocol: 'http', agent: new SshDialAgent(t) };
  }
}

/** Builds dockerode lazily (it is heavy to load) with the modem's own environment reading neutralised. */
export async function createDockerClient(endpoint: Endpoint): Promise<Dockerode> {
  const { default: Docker } = await import('dockerode');
  const options = dockerodeOptions(endpoint);
  return withoutModemEnv(() => new Docker(options));
}

function withoutModemEnv<T>(build: () => T): T {
  // Synchronous and restored in finally: no other code runs while the variables are hidden.
  const saved = MODEM_ENV.map((name) => [name, process.env[name]] as const);
  for (const [name] of saved) delete process.env[name];
  try {
    return build();
  } finally {
    for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
  }
}
