#!/usr/bin/env node
// Runs every benchmark in bench/ (bench/*.bench.ts) with tsx, one after the
// other so they do not compete for the CPU, and prints their output.
//   node scripts/run-bench.mjs [name-filter] [-- extra args for each bench]
// `npm run bench` builds first and then runs this. Exits non-zero when a
// benchmark fails (a benchmark never fails for being slow: it reports).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const filter = (dash === -1 ? args : args.slice(0, dash))[0];
const extra = dash === -1 ? [] : args.slice(dash + 1);

let files;
try {
  files = readdirSync('bench').filter((f) => f.endsWith('.bench.ts')).sort();
} catch (err) {
  console.error(`run-bench: cannot read bench/ (${err.message}); run this from the repository root`);
  process.exit(2);
}
if (filter) files = files.filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error(`run-bench: no bench/*.bench.ts${filter ? ` matching ${JSON.stringify(filter)}` : ''}`);
  process.exit(2);
}

const failed = [];
for (const f of files) {
  const file = join('bench', f);
  console.log(`\n=== ${file} ===`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...extra], { stdio: 'inherit' });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.error || r.status !== 0) {
    console.error(`=== ${file} FAILED (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}) after ${secs}s ===`);
    failed.push(file);
  } else {
    console.log(`=== ${file} done in ${secs}s ===`);
  }
}
if (failed.length) {
  console.error(`\nrun-bench: ${failed.length} of ${files.length} benchmark(s) failed: ${failed.join(', ')}`);
  process.exit(1);
}
