/**
 * The catalog cache as a file (issue 12, defects 2 and 4): its read is bounded
 * (a cache file that is a link to /dev/zero used to hang the inventory), and
 * a kill at any point of a merge leaves the old cache or the new one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CatalogCache } from '../../../src/inventory/catalog-cache.js';
import { runCrashingAfter } from '../../support/crash-fs.js';
import { runSnippet, src } from '../../support/child.js';
import { withScratch } from '../../support/scratch.js';

void test('a cache file that never ends is treated as absent, at once', async () => {
  await withScratch('vmgpu-cache-', (dir) => {
    const cache = new CatalogCache(dir);
    fs.mkdirSync(cache.dir, { recursive: true });
    fs.symlinkSync('/dev/zero', cache.pathFor('26b9', '595.58.02'));
    const r = runSnippet(`import { CatalogCache } from ${src('src/inventory/catalog-cache.ts')};
console.log(JSON.stringify(new CatalogCache(${JSON.stringify(dir)}).get('26b9', '595.58.02') ?? null));`);
    assert.equal(r.timedOut, false, 'the read of /dev/zero did not end');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'null');
  });
});

void test('killed at any point of a merge, the cache holds the old entries or the new ones', async () => {
  await withScratch('vmgpu-cache-', (dir) => {
    const old = [{ id: 1, name: 'NVIDIA L40S-1Q' }];
    const more = [{ id: 2, name: 'NVIDIA L40S-2Q' }];
    let k = 0;
    for (;;) {
      fs.rmSync(path.join(dir, 'catalog'), { recursive: true, force: true });
      new CatalogCache(dir).merge('26b9', '595.58.02', old);
      const run = runCrashingAfter(k, () => new CatalogCache(dir).merge('26b9', '595.58.02', more));
      const now = new CatalogCache(dir).get('26b9', '595.58.02');
      assert.ok(JSON.stringify(now) === JSON.stringify(old) || JSON.stringify(now) === JSON.stringify([...old, ...more]), `k=${k}: ${JSON.stringify(now)}`);
      if (!run.crashed) break;
      k++;
    }
    assert.ok(k >= 3, `a merge makes ${k} changes`);
  });
});
