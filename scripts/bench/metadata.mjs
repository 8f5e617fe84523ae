// metadata: the startup cost of `docker-clair docker-cli-plugin-metadata` (run before every docker clair call)
// against `node -e 0` of the same Node.js runtime.
import { benchEnv, fmt, hostBinaryAndNode, measure, rel } from './common.mjs';

export const metadata = {
  description: '`docker-clair docker-cli-plugin-metadata` (run before every docker clair call) vs `node -e 0`',
  defaults: { runs: 30, warmup: 3 },
  goalRatio: 1.15,
  async run(opts) {
    const { config, binary, node } = await hostBinaryAndNode(opts.binary);
    const env = benchEnv();
    const [sea, ref] = measure(
      [
        {
          label: `${rel(binary)} docker-cli-plugin-metadata`,
          cmd: binary,
          args: ['docker-cli-plugin-metadata'],
          env,
          check: (r) => {
            if (JSON.parse(r.stdout).SchemaVersion !== '0.1.0') throw new Error('metadata: unexpected output');
          },
        },
        { label: `node ${config.node} -e 0 (${rel(node)})`, cmd: node, args: ['-e', '0'], env },
      ],
      opts,
    );
    const ratio = sea.median / ref.median;
    const pass = ratio <= this.goalRatio;
    return {
      pass,
      lines: [
        `  ${sea.label}`,
        `    ${fmt(sea)}`,
        `  ${ref.label}`,
        `    ${fmt(ref)}`,
        `  ratio of medians ${ratio.toFixed(2)}  (goal <= ${this.goalRatio})  ${pass ? 'PASS' : 'MISS'}`,
      ],
    };
  },
};
