// The docker CLI execs a plugin with its own argv unchanged: docker's global flags come first, then the
// `clair` token, then the plugin's command (docker/cli cli-plugins/manager/manager.go PluginRunCommand). This
// module separates the three, so the command parser only ever sees the plugin's own arguments.
import type { DockerGlobalFlags } from '../docker/global-flags.js';

// Re-exported for the modules that take the flags from here (the managed Clair's commands).

export interface SplitArgv {
  globals: DockerGlobalFlags;
  /** What is left for the plugin's own parser. */
  args: string[];
  /** True when run by the docker CLI (it sets DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND). */
  pluginMode: boolean;
}

type ValueFlag = 'config' | 'context' | 'host' | 'logLevel' | 'tlsCaCert' | 'tlsCert' | 'tlsKey';
type BoolFlag = 'debug' | 'tls' | 'tlsVerify';

const VALUE_FLAGS: Record<string, ValueFlag> = {
  '--config': 'config',
  '--context': 'context',
  '-c': 'context',
  '--host': 'host',
  '-H': 'host',
  '--log-level': 'logLevel',
  '-l': 'logLevel',
  '--tlscacert': 'tlsCaCert',
  '--tlscert': 'tlsCert',
  '--tlskey': 'tlsKey',
};

const BOOL_FLAGS: Record<string, BoolFlag> = {
  '--debug': 'debug',
  '-D': 'debug',
  '--tls': 'tls',
  '--tlsverify': 'tlsVerify',
};

export class ArgvError extends Error {}

/** docker's flag parser (pflag) trims one pair of matching quotes from these paths; so do we. */
function trimQuotes(value: string): string {
  if (value.length >= 2) {
    const first = value[0];
    if ((first === '"' || first === "'") && value.at(-1) === first) return value.slice(1, -1);
  }
  return value;
}

function parseBool(flag: string, value: string): boolean {
  // pflag accepts Go's strconv.ParseBool spellings.
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new ArgvError(`invalid argument "${value}" for "${flag}" flag: expected true or false`);
}

function setValue(globals: DockerGlobalFlags, key: ValueFlag, value: string): void {
  if (key === 'host') globals.hosts.push(value);
  else if (key === 'tlsCaCert' || key === 'tlsCert' || key === 'tlsKey') globals[key] = trimQuotes(value);
  else globals[key] = value;
}

/**
 * Consumes docker's global flags from the front of `argv`, in any of pflag's spellings
 * (`--host x`, `--host=x`, `-H x`, `-Hx`, `-H=x`, `--tlsverify=false`), stopping at the first
 * token that is not one of them. In plugin mode the `clair` token that follows is dropped, and
 * `help clair [cmd]` (what `docker help clair` passes) becomes `[cmd] --help`.
 */
export function splitArgv(argv: readonly string[], env: Record<string, string | undefined>): SplitArgv {
  const globals: DockerGlobalFlags = { hosts: [] };
  const pluginMode = Boolean(env.DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND);
  let i = 0;
  for (; i < argv.length; i++) {
    const token = argv[i] as string;
    if (!token.startsWith('-') || token === '-' || token === '--') break;
    const eq = token.indexOf('=');
    const name = token.startsWith('--') && eq > 0 ? token.slice(0, eq) : token;
    const inline = token.startsWith('--') && eq > 0 ? token.slice(eq + 1) : undefined;

    const valueKey = VALUE_FLAGS[name];
    if (valueKey) {
      if (inline !== undefined) {
        setValue(globals, valueKey, inline);
      } else {
        const next = argv[i + 1];
        if (next === undefined) throw new ArgvError(`flag needs an argument: ${name}`);
        setValue(globals, valueKey, next);
        i++;
      }
      continue;
    }
    const boolKey = BOOL_FLAGS[name];
    if (boolKey) {
      globals[boolKey] = inline === undefined ? true : parseBool(name, inline);
      continue;
    }
    // Short value flags glued to their value: -Hunix:///x, -H=unix:///x, -ldebug.
    const short = VALUE_FLAGS[token.slice(0, 2)];
    if (!token.startsWith('--') && short && token.length > 2) {
      setValue(globals, short, token.slice(token[2] === '=' ? 3 : 2));
      continue;
    }
    break; // not a docker global flag: leave it for the plugin's own parser (e.g. --help, --version)
  }

  let args = argv.slice(i);
  if (pluginMode) {
    if (args[0] === 'clair') {
      args = args.slice(1);
    } else if (args[0] === 'help' && args[1] === 'clair') {
      args = [...args.slice(2), '--help'];
    }
  }
  return { globals, args, pluginMode };
}
