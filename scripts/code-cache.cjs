// Makes the V8 code cache the executable carries for its bundle. Run by the runtime the executable embeds, with the
// flags it runs with (V8 refuses a cache made under other flags):
//   node [execArgv] scripts/code-cache.cjs BUNDLE OUT HEAD TAIL NAME
// A cache taken right after compiling holds only the functions V8 compiles eagerly, which is little of a bundle:
// every other function would be compiled as a command first calls it. So the bundle first runs a scan that fails
// at the daemon (which points nowhere, with no docker config and no proxy), which calls the start-up path every
// real command takes (yargs, configuration, the Clair and daemon clients, the error report), and the cache is
// taken as the process exits, when V8 includes every function compiled so far.
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');

const [bundleFile, out, head, tail, name] = process.argv.slice(2);
const script = new vm.Script(head + fs.readFileSync(bundleFile, 'utf8') + tail, { filename: name });
process.on('exit', () => {
  fs.writeFileSync(out, script.createCachedData());
});
process.argv = [process.execPath, name, 'scan', '--clair', 'http://127.0.0.1:9', '--format', 'json', 'docker-clair-code-cache/training:latest'];
const module_ = { exports: {} };
script.runInThisContext().call(module_.exports, module_.exports, require, module_, name, '.');
