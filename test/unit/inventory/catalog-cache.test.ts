import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CatalogCache, CatalogCacheError } from '../../../src/inventory/catalog-cache.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-cache-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('merge creates the directory and file, get reads it back; nothing cached is undefined', () => {
  withDir((state) => {
    const cache = new CatalogCache(state);
    assert.equal(cache.get('26b9', '550.90.07'), undefined);
    const merged = cache.merge('26B9', '550.90.07', [
      { id: 1078, name: 'NVIDIA L40S-48Q' },
      { id: 1077, name: 'NVIDIA L40S-24Q' },
    ]);
    assert.deepEqual(merged, [
      { id: 1077, name: 'NVIDIA L40S-24Q' },
      { id: 1078, name: 'NVIDIA L40S-48Q' },
    ]);
    const file = join(state, 'catalog', '26b9-550.90.07.json');
    assert.ok(existsSync(file));
    assert.equal(statSync(file).mode & 0o777, 0o644);
    assert.equal(statSync(join(state, 'catalog')).mode & 0o7000, 0);
    assert.deepEqual(new CatalogCache(state).get('0x26b9', '550.90.07'), merged);
    assert.equal(cache.get('26b9', '550.90.08'), undefined, 'other driver versions are separate');
    assert.equal(cache.get('26b5', '550.90.07'), undefined, 'other cards are separate');
  });
});

void test('merge is a union: IDs seen earlier survive when the creatable list shrinks', () => {
  withDir((state) => {
    const cache = new CatalogCache(state);
    cache.merge('26b9', '595.58.02', [
      { id: 1, name: 'NVIDIA L40S-1Q' },
      { id: 2, name: 'NVIDIA L40S-2Q' },
    ]);
    cache.merge('26b9', '595.58.02', []); // a full card lists nothing
    cache.merge('26b9', '595.58.02', [{ id: 3, name: 'NVIDIA L40S-3Q' }]);
    assert.deepEqual(cache.get('26b9', '595.58.02')?.map((e) => e.id), [1, 2, 3]);
    // A driver that renames an ID is the authority for its version.
    cache.merge('26b9', '595.58.02', [{ id: 2, name: 'NVIDIA L40S-2B' }]);
    assert.equal(cache.get('26b9', '595.58.02')?.find((e) => e.id === 2)?.name, 'NVIDIA L40S-2B');
    // Invalid entries are dropped, valid ones kept.
    cache.merge('26b9', '595.58.02', [
      { id: 0, name: 'NVIDIA L40S-4Q' },
      { id: 4, name: 'bad/name' },
      { id: 5, name: 'NVIDIA L40S-6Q' },
    ]);
    assert.deepEqual(cache.get('26b9', '595.58.02')?.map((e) => e.id), [1, 2, 3, 5]);
  });
});

void test('keys are validated: no path characters reach the file system', () => {
  withDir((state) => {
    const cache = new CatalogCache(state);
    for (const v of ['../x', 'a/b', '..', '', ' 550', '550\0', '.hidden', 'x'.repeat(65), '5..5']) {
      assert.throws(() => cache.merge('26b9', v, [{ id: 1, name: 'NVIDIA L4-1Q' }]), CatalogCacheError, JSON.stringify(v));
      assert.throws(() => cache.get('26b9', v), CatalogCacheError, JSON.stringify(v));
    }
    for (const d of ['../26b9', '26b', '26b9/', 'gggg', '']) {
      assert.throws(() => cache.merge(d, '550.90.07', []), /device ID .* is not 4 hex digits/);
    }
    assert.deepEqual(readdirSync(state), [], 'nothing was written');
    assert.throws(() => new CatalogCache(''), CatalogCacheError);
  });
});

void test('property: arbitrary strings as keys either validate to a file inside <state>/catalog or throw', () => {
  withDir((state) => {
    const cache = new CatalogCache(state);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 6 }), (ver, dev) => {
        let p: string;
        try {
          p = cache.pathFor(dev, ver);
        } catch (e) {
          assert.ok(e instanceof CatalogCacheError);
          return;
        }
        assert.equal(p, join(state, 'catalog', p.slice(join(state, 'catalog').length + 1)));
        assert.ok(!p.slice(join(state, 'catalog').length + 1).includes('/'));
      }),
      { numRuns: 1000 },
    );
  });
});

void test('a crashed temp file is ignored and a corrupt cache reads as absent', () => {
  withDir((state) => {
    const dir = join(state, 'catalog');
    mkdirSync(dir, { recursive: true });
    // A writer died before rename: its temp file must not be read or block writes.
    writeFileSync(join(dir, '.tmp-999-deadbeef0000.json'), '{"format":1,"deviceId":"26b9","driverVersion":"1.0","entries":[{"id":9,"name":"X-9Q"}]}');
    const cache = new CatalogCache(state);
    assert.equal(cache.get('26b9', '1.0'), undefined);
    cache.merge('26b9', '1.0', [{ id: 1, name: 'NVIDIA L40S-1Q' }]);
    assert.deepEqual(cache.get('26b9', '1.0'), [{ id: 1, name: 'NVIDIA L40S-1Q' }]);
    // Truncated (as if written without the atomic rename) or tampered files read as absent.
    const file = join(dir, '26b9-1.0.json');
    for (const bad of ['{"format":1,"deviceId":"26b9","driverVe', '[]', 'null', '{"format":2,"deviceId":"26b9","driverVersion":"1.0","entries":[]}',
      '{"format":1,"deviceId":"26b5","driverVersion":"1.0","entries":[]}',
      '{"format":1,"deviceId":"26b9","driverVersion":"1.0","entries":[{"id":1,"name":"a\\nb"}]}']) {
      writeFileSync(file, bad);
      assert.equal(cache.get('26b9', '1.0'), undefined, bad);
    }
    // ...and the next merge repairs it.
    cache.merge('26b9', '1.0', [{ id: 2, name: 'NVIDIA L40S-2Q' }]);
    assert.deepEqual(cache.get('26b9', '1.0'), [{ id: 2, name: 'NVIDIA L40S-2Q' }]);
    // Only the final file and the stale temp remain: merge leaves no temp files of its own.
    assert.deepEqual(readdirSync(dir).sort(), ['.tmp-999-deadbeef0000.json', '26b9-1.0.json']);
    assert.match(readFileSync(file, 'utf8'), /"driverVersion": "1.0"/);
  });
});

void test('an unwritable state directory gives an error that names the path', () => {
  withDir((state) => {
    writeFileSync(join(state, 'catalog'), 'a file where the directory should be');
    const cache = new CatalogCache(state);
    assert.throws(() => cache.merge('26b9', '1.0', [{ id: 1, name: 'NVIDIA L40S-1Q' }]), (e: unknown) => e instanceof CatalogCacheError && e.message.includes(join(state, 'catalog')));
  });
});
