#!/usr/bin/env node
// Runs the test suite with Node's own test runner (TypeScript through tsx).
//   node scripts/run-tests.mjs unit|integration|all [extra node --test args]
// Integration tests need real Kubernetes binaries and Go peers; they are built
// (or reused from ~/.cache/vmgpu) by scripts/prepare-integration.mjs first, and
// a failure there fails the run: integration tests are never skipped.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const mode = process.argv[2] ?? 'all';
const extra = process.argv.slice(3);
if (!['unit', 'integration', 'all'].includes(mode)) {
  console.error(`usage: run-tests.mjs unit|integration|all (got ${mode})`);
  process.exit(2);
}

function find(dir) {
  let out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (e.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const files = [];
if (mode !== 'integration') files.push(...find('test/unit'));
if (mode !== 'unit') {
  const prep = spawnSync(process.execPath, ['scripts/prepare-integration.mjs'], { stdio: 'inherit' });
  if (prep.status !== 0) {
    console.error('\nintegration prerequisites could not be built: see the message above. The integration tests did not run; this run fails.');
    process.exit(1);
  }
  files.push(...find('test/integration'));
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const res = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...extra, ...files],
  { stdio: 'inherit', env: { ...process.env, VMGPU_TEST: '1' } },
);
process.exit(res.status ?? 1);
