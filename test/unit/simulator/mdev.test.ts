/** mdev vGPU as the kernel's mdev core and the NVIDIA driver behave (CONTRACTS.md §2). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMdevDescription } from '../../../src/inventory/catalog.js';
import type { MdevTypeName, MdevUuid } from '../../../src/sysfs/names.js';
import type { PciAddress } from '../../../src/model/pci.js';
import { node, pfOf, throwsErrno, typeId, vfsOf } from './helpers.js';

const U = (n: number) => `6f3a1e2c-0000-4000-8000-${n.toString(16).padStart(12, '0')}` as MdevUuid;
const dirOf = (id: number) => `nvidia-${id}` as MdevTypeName;

function avail(n: ReturnType<typeof node>, parent: PciAddress, id: number): number {
  return Number(n.port.readMdevTypeAttr(parent, dirOf(id), 'available_instances'));
}

void test('T4 (Turing): the PF is the mdev parent; type directories carry name, description, available_instances', () => {
  const n = node({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] });
  const pf = pfOf(n);
  assert.ok(n.port.mdevBusPresent());
  assert.deepEqual(n.port.listMdevBus(), [pf]);
  assert.ok(n.port.hasMdevSupportedTypes(pf));
  assert.equal(n.port.readPciAttr(pf, 'sriov_totalvfs'), undefined, 'T4 has no SR-IOV');
  const q1 = typeId(n, 'T4-1Q');
  const types = n.port.listMdevTypes(pf);
  assert.equal(types.length, n.gpus[0]!.types.length);
  assert.ok(types.includes(dirOf(q1)));
  assert.equal(n.port.readMdevTypeAttr(pf, dirOf(q1), 'name'), 'GRID T4-1Q');
  const d = parseMdevDescription(n.port.readMdevTypeAttr(pf, dirOf(q1), 'description')!);
  assert.equal(d.framebufferMiB, 1024);
  assert.equal(d.maxInstance, 16);
  assert.equal(n.port.readMdevTypeAttr(pf, dirOf(q1), 'device_api'), 'vfio-pci');
  assert.equal(avail(n, pf, q1), 16);
  assert.deepEqual(n.port.listMdevs(), []);
});

void test('create with a UUID: the instance appears everywhere, available_instances drops, other types close (homogeneous)', () => {
  const n = node({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] });
  const pf = pfOf(n);
  const q1 = typeId(n, 'T4-1Q');
  const q2 = typeId(n, 'T4-2Q');
  assert.equal(avail(n, pf, q2), 8);
  n.port.createMdev(pf, dirOf(q1), U(1));
  assert.ok(n.port.mdevExists(U(1)));
  assert.deepEqual(n.port.listMdevs(), [U(1)]);
  assert.deepEqual(n.port.listMdevTypeDevices(pf, dirOf(q1)), [U(1)]);
  const info = n.port.readMdev(U(1));
  assert.equal(info?.parent, pf);
  assert.equal(info?.type, dirOf(q1));
  assert.equal(typeof info?.iommuGroup, 'number');
  assert.ok(n.port.listIommuGroupMembers(info!.iommuGroup!).length === 0, 'an mdev group holds the mdev, not a PCI function');
  assert.ok(n.port.vfioGroupNodeExists(info!.iommuGroup!), '/dev/vfio/<group> for the mdev');
  assert.equal(avail(n, pf, q1), 15);
  assert.equal(avail(n, pf, q2), 0, 'a different size cannot be mixed in');
});

void test('EEXIST on a duplicate UUID, EDQUOT when no instances are left, EINVAL for a bad UUID', () => {
  const n = node({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] });
  const pf = pfOf(n);
  const q4 = typeId(n, 'T4-4Q'); // 4 per card
  for (let i = 1; i <= 4; i++) n.port.createMdev(pf, dirOf(q4), U(i));
  throwsErrno(() => n.port.createMdev(pf, dirOf(q4), U(2)), 'EEXIST');
  assert.equal(avail(n, pf, q4), 0);
  throwsErrno(() => n.port.createMdev(pf, dirOf(q4), U(5)), 'EDQUOT', /no available instances/);
  throwsErrno(() => n.backend.write('sys', `bus/pci/devices/${pf}/mdev_supported_types/${dirOf(q4)}/create`, 'not-a-uuid'), 'EINVAL');
  assert.equal(n.port.listMdevs().length, 4);
});

void test('remove frees the instance; a held mdev refuses removal and vgpu_params with EBUSY', () => {
  const n = node({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] });
  const pf = pfOf(n);
  const q2 = typeId(n, 'T4-2Q');
  n.port.createMdev(pf, dirOf(q2), U(1));
  n.port.createMdev(pf, dirOf(q2), U(2));
  assert.equal(avail(n, pf, q2), 6);
  n.hold(U(1));
  throwsErrno(() => n.port.removeMdev(U(1)), 'EBUSY');
  throwsErrno(() => n.port.writeMdevVgpuParams(U(1), 'frame_rate_limiter=0'), 'EBUSY');
  n.port.writeMdevVgpuParams(U(2), 'frame_rate_limiter=0');
  assert.equal(n.port.readMdev(U(2))?.vgpuParams?.trim(), 'frame_rate_limiter=0');
  throwsErrno(() => n.backend.write('sys', `bus/mdev/devices/${U(2)}/remove`, '0'), 'EINVAL');
  n.port.removeMdev(U(2));
  assert.equal(n.port.mdevExists(U(2)), false);
  assert.equal(avail(n, pf, q2), 7);
  n.release(U(1));
  n.port.removeMdev(U(1));
  assert.deepEqual(n.port.listMdevs(), []);
  assert.equal(avail(n, pf, typeId(n, 'T4-16Q')), 1, 'an empty card offers every type again');
  throwsErrno(() => n.port.removeMdev(U(1)), 'ENOENT');
});

void test('Ampere (A10, A100, A16): the VFs are the mdev parents, one vGPU per VF', () => {
  for (const [model, vfCount] of [
    ['A10', 24],
    ['A100', 20],
    ['A100-40GB', 10],
    ['A16', 16],
  ] as const) {
    const n = node({ gpus: [{ model, mode: 'mdev-vgpu' }] });
    const pf = pfOf(n);
    const vfs = vfsOf(n);
    assert.equal(vfs.length, vfCount, model);
    assert.equal(n.port.hasMdevSupportedTypes(pf), false, `${model}: not on the PF`);
    assert.deepEqual(n.port.listMdevBus(), vfs, `${model}: every VF is a parent`);
    for (const vf of vfs) assert.equal(n.port.hasNvidiaDir(vf), false, `${model}: mdev VFs have no nvidia/ (SR-IOV vGPU) directory`);
    const t = n.gpus[0]!.types.find((x) => !x.migBacked)!;
    n.port.createMdev(vfs[0]!, dirOf(t.id), U(1));
    for (const other of n.gpus[0]!.types) assert.equal(avail(n, vfs[0]!, other.id), 0, `${model}: ${vfs[0]} hosts one vGPU`);
    assert.equal(avail(n, vfs[1]!, t.id), 1, `${model}: the next VF can host the same type`);
    const different = n.gpus[0]!.types.find((x) => x.id !== t.id && !x.migBacked)!;
    assert.equal(avail(n, vfs[1]!, different.id), 0, `${model}: homogeneous`);
    throwsErrno(() => n.port.createMdev(vfs[0]!, dirOf(t.id), U(2)), 'EDQUOT');
  }
});

void test('A100: MIG-backed and time-sliced types do not mix', () => {
  const n = node({ gpus: [{ model: 'A100', mode: 'mdev-vgpu' }] });
  const vfs = vfsOf(n);
  const mig = n.gpus[0]!.types.find((t) => t.migBacked)!;
  const ts = n.gpus[0]!.types.find((t) => !t.migBacked)!;
  assert.equal(avail(n, vfs[1]!, mig.id), 1);
  n.port.createMdev(vfs[0]!, dirOf(ts.id), U(1));
  assert.equal(avail(n, vfs[1]!, mig.id), 0);
  throwsErrno(() => n.port.createMdev(vfs[1]!, dirOf(mig.id), U(2)), 'EDQUOT');
});

void test('profiles given at creation become instances with stable UUIDs', () => {
  const spec = { gpus: [{ model: 'A10', mode: 'mdev-vgpu' as const, profiles: ['A10-4Q', 'A10-4Q', 'A10-4Q'] }] };
  const a = node(spec);
  const b = node(spec);
  assert.equal(a.port.listMdevs().length, 3);
  assert.deepEqual(a.port.listMdevs(), b.port.listMdevs());
  const parents = a.port.listMdevs().map((u) => a.port.readMdev(u)!.parent);
  assert.equal(new Set(parents).size, 3, 'on three different VFs');
  assert.throws(() => node({ gpus: [{ model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-16Q', 'T4-16Q'] }] }), /does not fit/);
  assert.throws(() => node({ gpus: [{ model: 'T4', mode: 'mdev-vgpu', profiles: ['L40S-1Q'] }] }), /has no profile L40S-1Q/);
  assert.throws(() => node({ gpus: [{ model: 'T4', mode: 'sriov-vgpu' }] }), /uses mdev vGPU/);
  assert.throws(() => node({ gpus: [{ model: 'L40S', mode: 'mdev-vgpu' }] }), /uses SR-IOV vGPU/);
});
