#!/usr/bin/env node
// Bundles the `vmgpu` CLI and agent with esbuild into dist/bundle/: the entry
// dist/bundle/vmgpu.mjs and one chunk per group of commands
// (dist/bundle/chunks/), only the code that is reachable, minified. This is
// what `vmgpu` runs, installed (package.json "bin") or in the container image.
//
// Why a bundle: @kubernetes/client-node ships 21 MB of JavaScript (every API
// group, with comments) and Node keeps all loaded source in memory; the bundle
// keeps the three API groups the agent calls, which is most of the difference
// in idle memory (bench/agent.bench.ts). Why chunks: main.ts loads each group
// of commands with a dynamic import, and esbuild's code splitting turns each
// into a chunk, so `vmgpu --version` parses the entry alone and `discover`
// the inventory's chunk, never the Kubernetes client (bench/cli.bench.ts).
//
//   node scripts/bundle.mjs        (run by npm run build; also npm run bundle)
//
// Each output file is replaced atomically and only when it changed, so a
// vmgpu process running from dist/bundle while it is rebuilt never reads half
// a chunk. The bundle reads proto/ and package.json from the package root (two
// directories up), like dist/cli/main.js does.
import { Buffer } from 'node:buffer';
import { build } from 'esbuild';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
const entry = join(outdir, 'vmgpu.mjs');
const result = await build({
  entryPoints: { vmgpu: join(root, 'src', 'cli', 'main.ts') },
  outdir,
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  legalComments: 'linked',
  sourcemap: 'linked',
  metafile: true,
  write: false,
  logLevel: 'warning',
  // CommonJS dependencies (grpc-js, protobufjs) call require(); give each ES module one.
  banner: { js: "import { createRequire as __vmgpuCreateRequire } from 'node:module';\nconst require = __vmgpuCreateRequire(import.meta.url);" },
});

let written = 0;
for (const f of result.outputFiles) {
  let same = false;
  try {
    same = readFileSync(f.path).equals(Buffer.from(f.contents));
  } catch {
    // new file
  }
  if (same) continue;
  mkdirSync(dirname(f.path), { recursive: true });
  const tmp = `${f.path}.tmp-${process.pid}`;
  writeFileSync(tmp, f.contents, { mode: f.path === entry ? 0o755 : 0o644 });
  renameSync(tmp, f.path);
  written++;
}

const outputs = Object.entries(result.metafile.outputs).filter(([p]) => p.endsWith('.mjs'));
const size = (p) => (result.metafile.outputs[p]?.bytes ?? 0) / 1048576;
const entryKey = relative(root, entry);
const total = outputs.reduce((n, [, o]) => n + o.bytes, 0) / 1048576;
console.log(`bundled ${relative(process.cwd(), entry)} (${size(entryKey).toFixed(2)} MiB entry, ${outputs.length - 1} chunks, ${total.toFixed(1)} MiB of code; ${written} file(s) changed)`);
