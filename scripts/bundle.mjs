#!/usr/bin/env node
// Bundles the `vmgpu` CLI and agent into one ES module, dist/bundle/vmgpu.mjs,
// with esbuild: only the code that is reachable, minified. This is what the
// container image runs. Why: @kubernetes/client-node ships 21 MB of JavaScript
// (every API group, with comments) and Node keeps all loaded source in memory;
// the bundle keeps the three API groups the agent calls, which is most of the
// difference in idle memory (bench/agent.bench.ts measures both builds).
//
//   node scripts/bundle.mjs        (npm run bundle)
//
// The bundle still reads proto/ and package.json from the package root (two
// directories up), like dist/cli/main.js does.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'bundle', 'vmgpu.mjs');
const result = await build({
  entryPoints: [join(root, 'src', 'cli', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'linked',
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  // CommonJS dependencies (grpc-js, protobufjs) call require(); give the ES module one.
  banner: { js: "import { createRequire as __vmgpuCreateRequire } from 'node:module';\nconst require = __vmgpuCreateRequire(import.meta.url);" },
});
chmodSync(outfile, 0o755);
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`bundled ${outfile} (${(result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith('vmgpu.mjs'))].bytes / 1048576).toFixed(1)} MiB; ${(bytes / 1048576).toFixed(1)} MiB with map and licenses)`);
