// Entry point of the plugin binary. The metadata call is answered before anything heavy is loaded:
// the docker CLI runs it before every `docker clair …`, so its cost is paid on every call.
import { pluginMetadata } from './plugin/metadata.js';

const args = process.argv.slice(2);
if (args[0] === 'docker-cli-plugin-metadata') {
  process.stdout.write(`${JSON.stringify(pluginMetadata(), null, 2)}\n`);
} else {
  import('./cli/run.js')
    .then(({ runCli }) =>
      runCli({ argv: args, env: process.env, stdout: process.stdout, stderr: process.stderr }),
    )
    .then((code) => {
      process.exitCode = code;
    })
    .catch((error: unknown) => {
      process.stderr.write(`docker-clair: internal error: ${String(error)}\n`);
      process.exitCode = 2;
    });
}
