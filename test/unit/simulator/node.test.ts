/**
 * Simulator controls (hold/release, write log, device removal, reboot),
 * persistence (snapshot/restore, load/save) and materialisation to a real
 * directory tree that DiskBackend reads exactly like the in-memory one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readInventory } from '../../../src/inventory/read.js';
import {
  SIM_STATE_FILE,
  SimHostTools,
  loadSimulation,
  materialize,
  restoreNode,
  saveSimulation,
  snapshotNode,
  type SimNodeSpec,
  type SimulatedNode,
} from '../../../src/simulator/index.js';
import { DiskBackend } from '../../../src/sysfs/disk-backend.js';
import type { MdevTypeName, MdevUuid } from '../../../src/sysfs/names.js';
import { SysfsPort } from '../../../src/sysfs/port.js';
import { dumpTree, node, pfOf, throwsErrno, typeId, vfsOf } from './helpers.js';

const MIXED: SimNodeSpec = {
  gpus: [
    { model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] },
    { model: 'RTX6000-Ada', mode: 'passthrough', numaNode: 1 },
    { model: 'A10', mode: 'mdev-vgpu', profiles: ['A10-2Q', 'A10-2Q'] },
    { model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-4Q'] },
    { model: 'H200', mode: 'host' },
  ],
};

function withTemp<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-sim-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function dumpAll(n: SimulatedNode): Record<string, [string, string][]> {
  return {
    sys: [...dumpTree(n.backend, 'sys')],
    dev: [...dumpTree(n.backend, 'dev')],
    host: [...dumpTree(n.backend, 'host')],
  };
}

/** A node with some of everything changed after creation. */
function busyNode(): SimulatedNode {
  const n = node(MIXED);
  const [vfA] = vfsOf(n, 0).slice(2);
  n.port.writeCurrentVgpuType(vfA!, typeId(n, 'L40S-12Q', 0));
  n.port.writeVfVgpuParams(vfA!, 'frame_rate_limiter=0');
  n.hold(vfsOf(n, 0)[0]!);
  const t4 = n.gpus.find((g) => g.model.key === 'T4')!;
  n.port.createMdev(t4.pf.addr as never, `nvidia-${t4.types.find((t) => t.profile === 'T4-4Q')!.id}` as MdevTypeName, '11111111-2222-4333-8444-555555555555' as MdevUuid);
  const h200 = n.gpus.find((g) => g.model.key === 'H200')!.pf.addr as never;
  n.port.writeDriverOverride(h200, 'vfio-pci' as never);
  n.port.unbindDriver(h200);
  n.port.probeDriver(h200);
  n.removeDevNode(Number(n.port.readPciLink(h200, 'iommu_group')));
  return n;
}

void test('writes() counts every write attempt, failed or not; reads count nothing; the log says what happened', async () => {
  const n = node({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  const [vf0, vf1] = vfsOf(n);
  assert.equal(n.writes(), 0);
  readInventory(n.port);
  n.port.readNvidiaAttr(vf0!, 'creatable_vgpu_types');
  assert.equal(n.writes(), 0, 'reading the whole node writes nothing');
  n.port.writeCurrentVgpuType(vf0!, typeId(n, 'L40S-24Q'));
  throwsErrno(() => n.port.writeCurrentVgpuType(vf1!, typeId(n, 'L40S-48Q')), 'EINVAL');
  assert.equal(n.writes(), 2);
  assert.deepEqual(n.writeLog(), [
    { path: `/sys/bus/pci/devices/${vf0}/nvidia/current_vgpu_type`, data: String(typeId(n, 'L40S-24Q')), error: null },
    { path: `/sys/bus/pci/devices/${vf1}/nvidia/current_vgpu_type`, data: String(typeId(n, 'L40S-48Q')), error: 'EINVAL' },
  ]);
  // Host tools are writes too.
  await new SimHostTools(n).setHeterogeneousMode(pfOf(n), false).catch(() => {});
  assert.equal(n.writes(), 3);
  assert.match(n.writeLog()[2]!.path, /^exec nvidia-smi vgpu -shm 0/);
  // A write to a file that does not exist is logged with its errno.
  throwsErrno(() => n.backend.write('sys', 'bus/pci/devices/0000:99:00.0/sriov_numvfs', '1'), 'ENOENT');
  assert.equal(n.writeLog()[3]!.error, 'ENOENT');
});

void test('removeDevice drops a GPU with its VFs from the bus; restoreDevice brings it back as it was', () => {
  const n = node({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-6Q'] }] });
  const pf = pfOf(n, 1);
  const vfs = vfsOf(n, 1);
  n.removeDevice(pf);
  assert.equal(n.port.pciDeviceExists(pf), false);
  assert.equal(n.port.pciDeviceExists(vfs[0]!), false);
  assert.ok(!n.port.listPciDevices().includes(pf));
  assert.ok(n.port.pciDeviceExists(pfOf(n, 0)), 'the other GPU stays');
  throwsErrno(() => n.port.writeCurrentVgpuType(vfs[0]!, 0), 'ENOENT');
  n.restoreDevice(pf);
  assert.ok(n.port.pciDeviceExists(pf));
  assert.equal(n.port.readNvidiaAttr(vfs[0]!, 'current_vgpu_type')?.trim(), String(typeId(n, 'L40S-6Q', 1)));
  assert.throws(() => n.removeDevice('0000:77:00.0'), /no GPU at 0000:77:00.0/);
});

void test('removeDevNode hides /dev/vfio/<group> until restored', () => {
  const n = node({ gpus: [{ model: 'L40S', mode: 'passthrough' }] });
  const group = Number(n.port.readPciLink(pfOf(n), 'iommu_group'));
  n.removeDevNode(group);
  assert.equal(n.port.vfioGroupNodeExists(group), false);
  n.restoreDevNode(group);
  assert.ok(n.port.vfioGroupNodeExists(group));
});

void test('reboot: VFs, vGPU types, mdevs, holds and driver overrides vanish; drivers go back to their defaults', () => {
  const n = busyNode();
  n.removeDevice(pfOf(n, 1));
  n.reboot();
  assert.deepEqual(n.heldDevices(), []);
  for (const [i, g] of n.gpus.entries()) {
    assert.ok(n.port.pciDeviceExists(pfOf(n, i)), `${g.pf.addr} is back`);
    assert.equal(n.port.readPciLink(pfOf(n, i), 'driver'), 'nvidia', g.model.key);
    assert.equal(n.port.readPciAttr(pfOf(n, i), 'driver_override'), '(null)');
    assert.deepEqual(vfsOf(n, i), []);
  }
  assert.deepEqual(n.port.listMdevs(), []);
  const ada = n.gpus.find((g) => g.model.key === 'RTX6000-Ada')!;
  assert.equal(n.port.readPciLink(ada.audio!.addr as never, 'driver'), 'snd_hda_intel');
});

void test('snapshot → restore reproduces the node exactly (through JSON, as `sim` persists it)', () => {
  const n = busyNode();
  const state = JSON.parse(JSON.stringify(snapshotNode(n))) as ReturnType<typeof snapshotNode>;
  const back = restoreNode(state);
  assert.deepEqual(dumpAll(back), dumpAll(n));
  assert.deepEqual(back.heldDevices(), n.heldDevices());
  // The restored node keeps behaving: the held VF still refuses, a new bind gets a fresh group number.
  throwsErrno(() => back.port.writeCurrentVgpuType(vfsOf(back, 0)[0]!, 0), 'EBUSY');
  assert.deepEqual(snapshotNode(back), state);
  assert.throws(() => restoreNode({ ...state, version: 2 as 1 }), /unsupported or missing version/);
  assert.throws(() => restoreNode({ ...state, gpus: [{ ...state.gpus[0]!, pf: { ...state.gpus[0]!.pf, addr: '0000:99:00.0' } }, ...state.gpus.slice(1)] }), /does not match the spec/);
});

void test('materialize writes kernel-style relative symlinks that DiskBackend reads exactly like the in-memory tree', () => {
  withTemp((dir) => {
    const n = busyNode();
    const res = materialize(n, dir);
    assert.ok(res.files > 1000 && res.links > 100, JSON.stringify(res));
    const pf = pfOf(n, 0);
    const busLink = path.join(dir, 'sys/bus/pci/devices', pf);
    assert.ok(fs.lstatSync(busLink).isSymbolicLink());
    assert.equal(fs.readlinkSync(busLink), `../../../devices/pci0000:18/${pf}`);
    assert.equal(fs.realpathSync(busLink), fs.realpathSync(path.join(dir, 'sys/devices/pci0000:18', pf)));
    assert.equal(fs.readlinkSync(path.join(busLink, 'virtfn0')), `../${vfsOf(n, 0)[0]}`);
    assert.ok(fs.statSync(path.join(busLink, 'virtfn0', 'nvidia')).isDirectory(), 'links resolve through the tree');
    const disk = new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') });
    for (const root of ['sys', 'host'] as const) assert.deepEqual([...dumpTree(disk, root)], [...dumpTree(n.backend, root)], root);
    assert.deepEqual([...dumpTree(disk, 'dev', true)], [...dumpTree(n.backend, 'dev')]);
    // Only writable attributes are writable.
    assert.equal(fs.statSync(path.join(busLink, 'vendor')).mode & 0o777, 0o444);
    assert.equal(fs.statSync(path.join(busLink, 'sriov_numvfs')).mode & 0o777, 0o644);
  });
});

void test('the inventory of the in-memory node deep-equals the inventory of its materialised tree (except source)', () => {
  withTemp((dir) => {
    const n = busyNode();
    materialize(n, dir);
    const mem = readInventory(n.port);
    const disk = readInventory(new SysfsPort(new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') })));
    assert.notEqual(mem.source, disk.source);
    assert.deepEqual({ ...disk, source: '' }, { ...mem, source: '' });
    assert.equal(mem.gpus.length, 6);
    assert.deepEqual(mem.warnings, []);
  });
});

void test('saveSimulation / loadSimulation persist the node next to its tree; a missing state file says how to create one', () => {
  withTemp((dir) => {
    const n = busyNode();
    saveSimulation(n, dir);
    assert.ok(fs.existsSync(path.join(dir, SIM_STATE_FILE)));
    const back = loadSimulation(dir);
    assert.deepEqual(dumpAll(back), dumpAll(n));
    assert.equal(back.writes(), 0, 'the write log is per process, not persisted');
    // Changes made to the loaded node and saved again show up on disk.
    back.port.writeCurrentVgpuType(vfsOf(back, 0)[5]!, typeId(back, 'L40S-12Q', 0));
    saveSimulation(back, dir);
    const onDisk = fs.readFileSync(path.join(dir, 'sys/bus/pci/devices', vfsOf(back, 0)[5]!, 'nvidia/current_vgpu_type'), 'utf8');
    assert.equal(onDisk.trim(), String(typeId(back, 'L40S-12Q', 0)));
    assert.throws(() => loadSimulation(path.join(dir, 'nope')), /cannot load the simulated node from .*vmgpu-sim\.json.*vmgpu sim create/);
  });
});
