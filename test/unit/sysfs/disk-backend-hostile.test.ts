/**
 * Issue 12, defects 2, 3 and 4 on a plain directory tree (a capture, a test
 * tree, `vmgpu sim create`): reads stop at a bound and never open a device or
 * a FIFO; every write stays inside the tree, and a symlink that leads out is
 * refused by name; a plain-file attribute is replaced atomically, so a kill at
 * any point leaves the old value or the new one, never a mix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSimulatedNode, materialize } from '../../../src/simulator/index.js';
import { DiskBackend, MAX_ATTRIBUTE_BYTES } from '../../../src/sysfs/disk-backend.js';
import { SysfsError } from '../../../src/sysfs/errors.js';
import type { PciAddress } from '../../../src/model/pci.js';
import type { MdevTypeName, MdevUuid } from '../../../src/sysfs/names.js';
import { SysfsPort } from '../../../src/sysfs/port.js';
import { runCrashingAfter } from '../../support/crash-fs.js';

const PF = '0000:18:00.0' as PciAddress;
const VF = '0000:18:00.4' as PciAddress;

interface Tree {
  dir: string;
  sys: string;
  outside: string;
  victim: string;
  port: SysfsPort;
}

function withTree(mode: 'sriov-vgpu' | 'mdev-vgpu', f: (t: Tree) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-hostile-'));
  try {
    const model = mode === 'sriov-vgpu' ? 'L40S' : 'T4';
    materialize(createSimulatedNode({ gpus: [{ model, mode }] }), path.join(dir, 'node'));
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(path.join(outside, 'nvidia'), { recursive: true });
    const victim = path.join(outside, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    fs.writeFileSync(path.join(outside, 'nvidia', 'current_vgpu_type'), 'precious\n');
    fs.writeFileSync(path.join(outside, 'driver_override'), 'precious\n');
    const sys = path.join(dir, 'node', 'sys');
    const backend = new DiskBackend({ sys, dev: path.join(dir, 'node', 'dev'), host: path.join(dir, 'node', 'host') });
    assert.equal(backend.live, false);
    f({ dir, sys, outside, victim, port: new SysfsPort(backend) });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const devDir = (t: Tree, addr: string) => fs.realpathSync(path.join(t.sys, 'bus/pci/devices', addr));

function replaceWithLink(p: string, target: string): void {
  fs.rmSync(p, { recursive: true, force: true });
  fs.symlinkSync(target, p);
}

function refusedNaming(f: () => void, link: string): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof SysfsError, String(e));
    assert.equal(e.code, 'EXDEV', e.message);
    assert.ok(e.detail?.startsWith(`${link} is a symbolic link to `), e.message);
    assert.match(e.detail ?? '', /leads out of .*; vmgpu never writes outside the tree it was given/);
    return true;
  });
}

void test('a write through an attribute that is a symlink out of the tree is refused by name; the target is untouched', () => {
  withTree('sriov-vgpu', (t) => {
    const attr = path.join(devDir(t, VF), 'nvidia/current_vgpu_type');
    replaceWithLink(attr, t.victim);
    refusedNaming(() => t.port.writeCurrentVgpuType(VF, 934), attr);
    // A relative link that climbs out is refused the same way.
    replaceWithLink(attr, `${'../'.repeat(12)}${t.victim.slice(1)}`);
    refusedNaming(() => t.port.writeCurrentVgpuType(VF, 934), attr);
    assert.equal(fs.readFileSync(t.victim, 'utf8'), 'precious\n');
  });
});

void test('the same for a directory on the way (nvidia/), the device link itself and driver_override', () => {
  withTree('sriov-vgpu', (t) => {
    const nvidia = path.join(devDir(t, VF), 'nvidia');
    replaceWithLink(nvidia, path.join(t.outside, 'nvidia'));
    refusedNaming(() => t.port.writeCurrentVgpuType(VF, 934), nvidia);

    const busLink = path.join(t.sys, 'bus/pci/devices', '0000:18:00.5');
    replaceWithLink(busLink, t.outside);
    refusedNaming(() => t.port.writeCurrentVgpuType('0000:18:00.5' as PciAddress, 934), busLink);

    const override = path.join(devDir(t, PF), 'driver_override');
    replaceWithLink(override, path.join(t.outside, 'driver_override'));
    refusedNaming(() => t.port.writeDriverOverride(PF, null), override);
    for (const f of ['nvidia/current_vgpu_type', 'driver_override']) assert.equal(fs.readFileSync(path.join(t.outside, f), 'utf8'), 'precious\n', f);
  });
});

void test('mdev create through a link out of the tree is refused', () => {
  withTree('mdev-vgpu', (t) => {
    const types = path.join(devDir(t, PF), 'mdev_supported_types');
    const type = fs.readdirSync(types)[0]!;
    const create = path.join(types, type, 'create');
    replaceWithLink(create, t.victim);
    refusedNaming(() => t.port.createMdev(PF, type as MdevTypeName, '6f3a1e2c-0000-4000-8000-000000000001' as MdevUuid), create);
    assert.equal(fs.readFileSync(t.victim, 'utf8'), 'precious\n');
  });
});

void test('links inside the tree are followed as the kernel would; the value lands in the device directory', () => {
  withTree('sriov-vgpu', (t) => {
    t.port.writeCurrentVgpuType(VF, 7);
    assert.equal(fs.readFileSync(path.join(devDir(t, VF), 'nvidia/current_vgpu_type'), 'utf8'), '7');
    assert.equal(t.port.readNvidiaAttr(VF, 'current_vgpu_type'), '7');
    assert.equal(fs.statSync(path.join(devDir(t, VF), 'nvidia/current_vgpu_type')).mode & 0o777, 0o644, 'the mode is kept');
  });
});

void test('a kill at any point of a plain-file write leaves the old value or the new one, never a mix', () => {
  withTree('sriov-vgpu', (t) => {
    const file = path.join(devDir(t, VF), 'nvidia/current_vgpu_type');
    let k = 0;
    for (;;) {
      fs.writeFileSync(file, '1000\n');
      const run = runCrashingAfter(k, () => t.port.writeCurrentVgpuType(VF, 64));
      const now = fs.readFileSync(file, 'utf8');
      assert.ok(now === '1000\n' || now === '64', `k=${k}: the attribute holds ${JSON.stringify(now)}`);
      if (!run.crashed) {
        assert.equal(now, '64');
        break;
      }
      k++;
    }
    assert.ok(k >= 2, `the write has several steps (${k}); each was a crash point`);
  });
});

void test('reads: a device or FIFO in a tree is refused without blocking; an attribute larger than a page is refused', () => {
  withTree('sriov-vgpu', (t) => {
    const dev = devDir(t, PF);
    replaceWithLink(path.join(dev, 'numa_node'), '/dev/zero');
    fs.rmSync(path.join(dev, 'local_cpulist'));
    execFileSync('mkfifo', [path.join(dev, 'local_cpulist')]);
    fs.writeFileSync(path.join(dev, 'modalias'), 'x'.repeat(MAX_ATTRIBUTE_BYTES + 1));
    const reads: [string, string, RegExp][] = [
      ['numa_node', 'EINVAL', /not a regular file/],
      ['local_cpulist', 'EINVAL', /not a regular file/],
      ['modalias', 'EFBIG', /larger than 65536 bytes/],
    ];
    for (const [attr, code, detail] of reads) {
      assert.throws(
        () => t.port.readPciAttr(PF, attr as 'numa_node'),
        (e: unknown) => e instanceof SysfsError && e.code === code && detail.test(e.detail ?? '') && e.path.endsWith(`/${attr}`),
        attr,
      );
    }
    fs.writeFileSync(path.join(dev, 'modalias'), 'x'.repeat(MAX_ATTRIBUTE_BYTES));
    assert.equal(t.port.readPciAttr(PF, 'modalias')?.length, MAX_ATTRIBUTE_BYTES, 'exactly the limit is fine');
  });
});
