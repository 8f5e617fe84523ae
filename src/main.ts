// Entry point of the plugin's bundle (run by the executable's launcher, sea-entry.ts, or by node directly): with the
// launcher, the only module that touches process.*. The metadata call is answered before anything heavy is
// loaded — the docker CLI runs it before every `docker clair …`.
import { pluginMetadata } from './plugin/metadata.js';

const args = process.argv.slice(2);
if (args[0] === 'docker-cli-plugin-metadata') {
  process.stdout.write(`${JSON.stringify(pluginMetadata(), null, 2)}\n`);
} else {
  void run();
}

async function run(): Promise<void> {
  const [{ runCli }, { CancelledError, ExitCode }, { watchPluginSocket }] = await Promise.all([
    import('./cli/run.js'),
    import('./runtime/errors.js'),
    import('./plugin/cli-socket.js'),
  ]);
  // First SIGINT/SIGTERM (or the docker CLI closing its socket) cancels and cleans up; a second one
  // exits at once.
  const controller = new AbortController();
  const cancel = (why: string) => {
    if (controller.signal.aborted) {
      process.stderr.write(`docker-clair: ${why} again: exiting now\n`);
      process.exit(ExitCode.Cancelled);
    }
    controller.abort(new CancelledError(`cancelled (${why})`));
  };
  process.on('SIGINT', () => cancel('SIGINT'));
  process.on('SIGTERM', () => cancel('SIGTERM'));
  const socket = watchPluginSocket(process.env, () => cancel('the docker CLI asked to stop'));
  try {
    process.exitCode = await runCli({
      argv: args,
      env: process.env,
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      stdoutIsTTY: Boolean(process.stdout.isTTY),
      stderrIsTTY: Boolean(process.stderr.isTTY),
      signal: controller.signal,
    });
  } catch (error) {
    process.stderr.write(`docker-clair: internal error: ${String(error)}\n`);
    process.exitCode = ExitCode.Error;
  } finally {
    socket.close();
  }
}
