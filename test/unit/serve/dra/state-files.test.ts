/**
 * The DRA driver's files (its checkpoint, the CDI specs, the KEP-5304 metadata)
 * are replaced atomically and never written through a link planted at the name
 * a write goes through first, and the checkpoint is read with a bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CdiWriter } from '../../../../src/serve/dra/cdi.js';
import { Checkpoint } from '../../../../src/serve/dra/checkpoint.js';
import { MetadataWriter } from '../../../../src/serve/dra/metadata.js';
import { withScratch } from '../../../support/scratch.js';

const UID = '0f3c2f1e-9d7a-4c1b-8a55-2b8e6f0a1c3d';

/** Plants a link at every name a careless writer of `file` could open first (`<file>.tmp-<pid>`, `<file>.tmp`). */
function plant(file: string, outside: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (const name of [`${file}.tmp-${process.pid}`, `${file}.tmp`]) fs.symlinkSync(outside, name);
}

void test('writes never follow a link planted beside the file: checkpoint, CDI spec, metadata', async () => {
  await withScratch('vmgpu-dra-files-', (dir) => {
    const outside = path.join(dir, 'outside.txt');
    fs.writeFileSync(outside, 'not yours\n');

    const cp = new Checkpoint(path.join(dir, 'state'));
    plant(cp.file, outside);
    cp.put({ uid: UID, namespace: 'ns', name: 'c', state: 'preparing', devices: [], cdi: {}, since: new Date(0).toISOString() });

    const cdi = new CdiWriter(path.join(dir, 'cdi'));
    plant(cdi.fileOf(UID), outside);
    cdi.write(UID, []);

    const meta = new MetadataWriter(path.join(dir, 'plugin'));
    const ref = { namespace: 'ns', name: 'c', uid: UID, podClaimName: null };
    plant(meta.hostFile(ref, 'gpu'), outside);
    meta.write(ref, 'gpu', []);

    assert.equal(fs.readFileSync(outside, 'utf8'), 'not yours\n');
    for (const f of [cp.file, cdi.fileOf(UID), meta.hostFile(ref, 'gpu')]) assert.ok(fs.lstatSync(f).isFile(), `${f} is a file of its own`);
    assert.equal((fs.statSync(cp.file).mode & 0o777).toString(8), '600', 'the checkpoint is private');
  });
});

void test('a checkpoint that reads on forever (a link to /dev/zero) is refused with its name, not read whole', async () => {
  await withScratch('vmgpu-dra-files-', (dir) => {
    const cp = new Checkpoint(path.join(dir, 'state'));
    fs.mkdirSync(cp.dir, { recursive: true });
    fs.symlinkSync('/dev/zero', cp.file);
    assert.throws(() => cp.load(), (e: unknown) => (e as Error).message.includes(cp.file));
  });
});
