/**
 * One contract, two implementations: everything the port relies on from a
 * SysfsBackend holds for the simulator's in-memory tree and for DiskBackend
 * over the same node materialised on disk (what `--sysfs-root` reads). A
 * difference here means the tests on the simulator would not hold on a tree.
 * The one difference allowed: device nodes are empty files on disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { createSimulatedNode, materialize, type SimulatedNode } from '../../../src/simulator/index.js';
import type { Root, SysfsBackend } from '../../../src/sysfs/backend.js';
import { DiskBackend } from '../../../src/sysfs/disk-backend.js';
import { isSysfsError } from '../../../src/sysfs/errors.js';
import { withScratch } from '../../support/scratch.js';

interface Pair {
  node: SimulatedNode;
  backends: [[string, SysfsBackend], [string, SysfsBackend]];
}

async function withPair(f: (p: Pair) => void): Promise<void> {
  await withScratch('vmgpu-contract-', (dir) => {
    const node = createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q'] }, { model: 'A100', mode: 'mdev-vgpu', profiles: ['A100D-20C'] }, { model: 'RTX6000-Ada', mode: 'passthrough' }] });
    materialize(node, dir);
    const disk = new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') });
    f({ node, backends: [['simulator', node.backend], ['disk', disk]] });
  });
}

/** Every path under a root, walked through the backend itself (links reported, not followed). */
function walk(b: SysfsBackend, root: Root, rel = '', out: string[] = []): string[] {
  for (const name of b.list(root, rel).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    out.push(p);
    if (b.kind(root, p) === 'dir') walk(b, root, p, out);
  }
  return out;
}

const ROOTS: Root[] = ['sys', 'dev', 'host'];

void test('contract: the same entries, kinds, link targets and attribute values on both backends', async () => {
  await withPair(({ backends: [[, sim], [, disk]] }) => {
    for (const root of ROOTS) {
      const paths = walk(sim, root);
      assert.deepEqual(walk(disk, root), paths, `${root}: the trees list the same entries`);
      for (const p of paths) {
        const kind = sim.kind(root, p);
        // The one known difference: a materialised tree holds device nodes as empty files (mknod needs privileges).
        assert.equal(disk.kind(root, p), kind === 'device' ? 'file' : kind, `${root}/${p}: kind`);
        assert.equal(disk.exists(root, p), sim.exists(root, p), `${root}/${p}: exists`);
        if (kind === 'link') assert.equal(disk.readlink(root, p), sim.readlink(root, p), `${root}/${p}: link target`);
        if (kind === 'file') assert.equal(disk.read(root, p), sim.read(root, p), `${root}/${p}: value`);
      }
    }
  });
});

void test('contract: reads follow links the way the kernel resolves them', async () => {
  await withPair(({ node, backends }) => {
    const vf = node.gpus[0]!.vfs[0]!.fn.addr;
    for (const [name, b] of backends) {
      assert.equal(b.read('sys', `bus/pci/devices/${vf}/nvidia/current_vgpu_type`).trim(), String(node.gpus[0]!.vfs[0]!.typeId), name);
      assert.ok(b.list('sys', `bus/pci/devices/${vf}/iommu_group/devices`).includes(vf), `${name}: a group lists its members through the link`);
    }
  });
});

void test('contract: missing paths are ENOENT for read, list and readlink; kind is null and exists false', async () => {
  await withPair(({ backends }) => {
    for (const [name, b] of backends) {
      for (const op of [() => b.read('sys', 'bus/pci/devices/0000:ff:1f.7/vendor'), () => b.list('sys', 'no/such/dir'), () => b.readlink('sys', 'bus/pci/devices/0000:ff:1f.7')]) {
        assert.throws(op, (e: unknown) => isSysfsError(e, 'ENOENT'), name);
      }
      assert.equal(b.kind('sys', 'no/such'), null, name);
      assert.equal(b.exists('sys', 'no/such'), false, name);
    }
  });
});

void test('contract: readlink of something that is not a link is EINVAL', async () => {
  await withPair(({ node, backends }) => {
    const pf = node.gpus[0]!.pf.addr;
    for (const [name, b] of backends) {
      const dir = b.readlink('sys', `bus/pci/devices/${pf}`);
      assert.throws(() => b.readlink('sys', `${dir.replace(/^(\.\.\/)+/, '')}/vendor`), (e: unknown) => isSysfsError(e, 'EINVAL'), name);
    }
  });
});

void test('contract: a write never creates a file that is not there', async () => {
  await withPair(({ backends }) => {
    for (const [name, b] of backends) {
      assert.throws(() => b.write('sys', 'bus/pci/devices/0000:ff:1f.7/driver_override', 'vfio-pci'), (e: unknown) => isSysfsError(e, 'ENOENT', 'ENOTDIR'), name);
      assert.equal(b.exists('sys', 'bus/pci/devices/0000:ff:1f.7'), false, name);
    }
  });
});

void test('contract: a write replaces the whole value of a writable attribute', async () => {
  await withPair(({ node, backends }) => {
    const vf = node.gpus[0]!.vfs[1]!.fn.addr;
    for (const [name, b] of backends) {
      b.write('sys', `bus/pci/devices/${vf}/nvidia/vgpu_params`, 'frame_rate_limiter=0');
      assert.equal(b.read('sys', `bus/pci/devices/${vf}/nvidia/vgpu_params`).trim(), 'frame_rate_limiter=0', name);
      b.write('sys', `bus/pci/devices/${vf}/nvidia/vgpu_params`, '');
      assert.equal(b.read('sys', `bus/pci/devices/${vf}/nvidia/vgpu_params`).trim(), '', `${name}: no stale tail`);
    }
  });
});
