// The docker CLI runs `docker-clair docker-cli-plugin-metadata` before every plugin call and for
// every `docker --help`, so this module imports nothing and answers from build-time constants.
import { VERSION } from '../version.js';

const PLUGIN_URL = 'https://github.com/docker-clair/docker-clair';

/** CLIs older than 28.4.1 accept only SchemaVersion "0.1.0": anything else makes the plugin "unknown". */
export function pluginMetadata(): Record<string, string> {
  return {
    SchemaVersion: '0.1.0',
    Vendor: 'docker-clair',
    Version: VERSION,
    ShortDescription: 'Scan images for known vulnerabilities with Clair',
    URL: PLUGIN_URL,
  };
}
