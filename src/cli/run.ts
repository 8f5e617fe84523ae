// Placeholder replaced by the real CLI in this same change.
export interface CliIo {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}
export async function runCli(io: CliIo): Promise<number> {
  const { default: yargs } = await import('yargs');
  await yargs(io.argv).command('scan', 'Scan images').parseAsync();
  return 0;
}
