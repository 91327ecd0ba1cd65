/**
 * `vmgpu capture` → `vmgpu discover --sysfs-root FILE.tar.gz`: a capture of a
 * materialised simulator tree replays to the same inventory as the tree, and
 * binary files are left out of the archive.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tar from 'tar';
import type { Inventory } from '../../src/inventory/types.js';
import { createSimulatedNode, materialize } from '../../src/simulator/index.js';
import { assertCleanError, requireBuiltCli, vmgpu } from './vmgpu-cli.js';

let work = '';
before(() => {
  requireBuiltCli();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-capture-'));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** The inventory without what legitimately differs between a tree and its replay: where it was read from. */
function comparable(inv: Inventory, root: string): unknown {
  const text = JSON.stringify({ ...inv, source: '' });
  return JSON.parse(text.split(root).join('<root>')) as unknown;
}

function discoverJson(root: string, stateDir: string): Inventory {
  const r = vmgpu(['discover', '--json', '--sysfs-root', root, '--state-dir', stateDir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Inventory;
}

function archiveEntries(file: string): string[] {
  const out: string[] = [];
  tar.t({ file, sync: true, onReadEntry: (e) => out.push(e.path.replace(/\/$/, '')) });
  return out;
}

void test('capture of a simulator tree replays to the same inventory; binary files are skipped', () => {
  const tree = path.join(work, 'node');
  const n = createSimulatedNode({
    gpus: [
      { model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-8Q', 'L40S-8Q'] },
      { model: 'RTX6000-Ada', mode: 'passthrough' },
      { model: 'A10', mode: 'mdev-vgpu', profiles: ['A10-4Q', 'A10-4Q', 'A10-4Q'] },
      { model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-2Q'] },
      { model: 'H200', mode: 'host' },
    ],
  });
  materialize(n, tree);
  // Binary and huge files a real device directory has.
  const pfDir = fs.realpathSync(path.join(tree, 'sys/bus/pci/devices', n.gpus[0]!.pf.addr));
  const binaries = { config: Buffer.alloc(4096, 0xff), resource0: Buffer.alloc(1024, 0), rom: Buffer.from([0x55, 0xaa, 0, 1]), resource1_wc: Buffer.alloc(8) };
  for (const [name, data] of Object.entries(binaries)) fs.writeFileSync(path.join(pfDir, name), data);
  fs.writeFileSync(path.join(pfDir, 'huge_attr'), 'x'.repeat(70 * 1024));

  const out = path.join(work, 'node.tar.gz');
  const cap = vmgpu(['capture', '--sysfs-root', tree, '--out', out]);
  assert.equal(cap.code, 0, cap.stderr);
  assert.match(cap.stdout, /wrote .*node\.tar\.gz: [0-9]+ files, [0-9]+ links, [0-9]+ skipped \(kernel unknown, NVIDIA driver 595\.58\.02\)/);
  assert.match(cap.stdout, /replay it with: vmgpu discover --sysfs-root .*node\.tar\.gz/);
  assert.equal(fs.statSync(out).mode & 0o777, 0o644);

  const entries = archiveEntries(out);
  assert.ok(entries.includes('vmgpu-capture.json'));
  const relPf = path.relative(path.join(tree), pfDir);
  for (const name of [...Object.keys(binaries), 'huge_attr']) assert.ok(!entries.includes(`${relPf}/${name}`), `${name} is not in the archive`);
  assert.ok(entries.includes(`${relPf}/vendor`), 'attribute files are');
  assert.ok(entries.includes(`sys/bus/pci/devices/${n.gpus[0]!.pf.addr}`), 'links are');

  const replay = path.join(work, 'replay');
  fs.mkdirSync(replay);
  tar.x({ file: out, cwd: replay, sync: true });
  const meta = JSON.parse(fs.readFileSync(path.join(replay, 'vmgpu-capture.json'), 'utf8')) as { format: number; nvidiaDriverVersion: string; skipped: { path: string; reason: string }[] };
  assert.equal(meta.format, 1);
  assert.equal(meta.nvidiaDriverVersion, '595.58.02');
  for (const name of ['config', 'resource0', 'rom', 'resource1_wc', 'huge_attr']) {
    assert.ok(meta.skipped.some((s) => s.path.endsWith(`/${name}`)), `${name} is listed as skipped`);
  }
  assert.ok(fs.lstatSync(path.join(replay, 'sys/bus/pci/devices', n.gpus[0]!.pf.addr)).isSymbolicLink(), 'links stay links');

  const fromTree = discoverJson(tree, path.join(work, 'state-tree'));
  const fromArchive = discoverJson(out, path.join(work, 'state-archive'));
  assert.equal(fromArchive.gpus.length, 6);
  assert.deepEqual(comparable(fromArchive, '<none>'), comparable(fromTree, '<none>'));
  assert.match(fromArchive.source, /vmgpu-replay-/);
  // The table replays too.
  const table = vmgpu(['discover', '--sysfs-root', out, '--state-dir', path.join(work, 'state-archive')]);
  assert.match(table.stdout, /L40S-8Q x2, 30\/32 VFs free/);
  assert.match(table.stdout, /A10-4Q x3/);
});

void test('capture of the real H200 fixture replays to the same inventory', () => {
  const fixture = path.resolve('test/fixtures/real-h200-vm');
  const out = path.join(work, 'h200.tgz');
  const cap = vmgpu(['capture', '--sysfs-root', path.join(fixture, 'sys'), '--dev-root', path.join(work, 'no-dev'), '--out', out]);
  assert.equal(cap.code, 0, cap.stderr);
  const a = discoverJson(path.join(fixture, 'sys'), path.join(work, 's1'));
  const b = discoverJson(out, path.join(work, 's2'));
  assert.deepEqual(comparable(b, '<none>'), comparable(a, '<none>'));
  assert.equal(b.gpus[0]!.model.name, 'H200');
});

void test('a corrupt or foreign archive is refused with a message naming it', () => {
  const junk = path.join(work, 'junk.tar.gz');
  fs.writeFileSync(junk, 'this is not a tarball');
  const r = vmgpu(['discover', '--sysfs-root', junk]);
  assert.notEqual(r.code, 0);
  assert.match(assertCleanError(r), /cannot read the capture archive .*junk\.tar\.gz/);
  // A valid tar.gz without sys/ is not a capture.
  const foreignDir = path.join(work, 'foreign');
  fs.mkdirSync(foreignDir);
  fs.writeFileSync(path.join(foreignDir, 'hello.txt'), 'hi');
  const foreign = path.join(work, 'foreign.tar.gz');
  tar.c({ gzip: true, file: foreign, cwd: foreignDir, sync: true }, ['hello.txt']);
  const f = vmgpu(['discover', '--sysfs-root', foreign]);
  assert.notEqual(f.code, 0);
  assert.match(assertCleanError(f), /foreign\.tar\.gz is not a vmgpu capture: it has no sys\/ directory/);
});
