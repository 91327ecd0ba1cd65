/**
 * SR-IOV vGPU as the NVIDIA driver behaves (CONTRACTS.md §1): every test goes
 * through the sysfs port (or the raw backend where the port would refuse the
 * input), as vmgpu itself would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNvidiaSmiSupportedTypes } from '../../../src/inventory/catalog.js';
import { SimHostTools } from '../../../src/simulator/index.js';
import type { DriverName } from '../../../src/sysfs/names.js';
import { creatable, node, pfOf, throwsErrno, typeId, vfsOf } from './helpers.js';

const l40s = (extra: Partial<Parameters<typeof node>[0]> = {}, gpu: Partial<Parameters<typeof node>[0]['gpus'][0]> = {}) =>
  node({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', ...gpu }], ...extra });

void test('a fresh L40S has 32 VFs and each lists every profile of the card as creatable', () => {
  const n = l40s();
  const vfs = vfsOf(n);
  assert.equal(vfs.length, 32);
  assert.equal(n.port.readPciAttr(pfOf(n), 'sriov_numvfs'), '32');
  assert.equal(n.port.readPciAttr(pfOf(n), 'sriov_totalvfs'), '32');
  const all = n.gpus[0]!.types.map((t) => t.id).sort((a, b) => a - b);
  assert.ok(all.length > 20);
  for (const vf of vfs) {
    assert.ok(n.port.hasNvidiaDir(vf), `${vf} has nvidia/`);
    assert.deepEqual(creatable(n, vf).sort((a, b) => a - b), all);
    assert.equal(n.port.readNvidiaAttr(vf, 'current_vgpu_type')?.trim(), '0');
  }
  // The file has the driver's header line and `ID : Name` rows.
  const text = n.port.readNvidiaAttr(vfs[0]!, 'creatable_vgpu_types')!;
  assert.match(text.split('\n')[0]!, /^ID\s+:\s+vGPU Name$/);
  assert.ok(text.includes(`${typeId(n, 'L40S-12Q')} : NVIDIA L40S-12Q`));
});

void test('homogeneous (default): a type on one VF leaves only that type creatable on its siblings, until the card is full', () => {
  const n = l40s();
  const [vf0, vf1, ...rest] = vfsOf(n);
  const q12 = typeId(n, 'L40S-12Q');
  n.port.writeCurrentVgpuType(vf0!, q12);
  assert.equal(n.port.readNvidiaAttr(vf0!, 'current_vgpu_type')?.trim(), String(q12));
  assert.deepEqual(creatable(n, vf0!), [], 'a configured VF lists nothing');
  assert.deepEqual(creatable(n, vf1!), [q12], 'siblings list only the same type');
  // L40S-12Q: 4 × 12 GB on 48 GB.
  n.port.writeCurrentVgpuType(vf1!, q12);
  n.port.writeCurrentVgpuType(rest[0]!, q12);
  assert.deepEqual(creatable(n, rest[1]!), [q12]);
  n.port.writeCurrentVgpuType(rest[1]!, q12);
  for (const vf of rest.slice(2)) assert.deepEqual(creatable(n, vf), [], `${vf}: the card is full`);
  throwsErrno(() => n.port.writeCurrentVgpuType(rest[2]!, q12), 'EINVAL', /not creatable/);
  // A different size is refused even where framebuffer would allow it.
  const n2 = l40s();
  const [a, b] = vfsOf(n2);
  n2.port.writeCurrentVgpuType(a!, typeId(n2, 'L40S-12Q'));
  throwsErrno(() => n2.port.writeCurrentVgpuType(b!, typeId(n2, 'L40S-1Q')), 'EINVAL');
});

void test('mixed-size mode: writing a type consumes framebuffer and shrinks every sibling list to what still fits', () => {
  const n = l40s();
  const tools = new SimHostTools(n);
  const pf = pfOf(n);
  n.setHeterogeneousMode(pf, true);
  assert.equal(n.heterogeneousMode(pf), true);
  const [vf0, vf1, vf2] = vfsOf(n);
  const types = n.gpus[0]!.types;
  const fbOf = (id: number) => types.find((t) => t.id === id)!.framebufferMiB;
  const seriesOf = (id: number) => types.find((t) => t.id === id)!.series;
  n.port.writeCurrentVgpuType(vf0!, typeId(n, 'L40S-24Q'));
  const after24 = creatable(n, vf1!);
  assert.ok(after24.includes(typeId(n, 'L40S-24Q')));
  assert.ok(after24.includes(typeId(n, 'L40S-8Q')), 'a smaller size of the same series fits beside it');
  assert.ok(!after24.includes(typeId(n, 'L40S-48Q')));
  assert.ok(after24.every((id) => fbOf(id) <= 24 * 1024), 'nothing bigger than the 24 GB left');
  assert.ok(after24.every((id) => seriesOf(id) === 'Q'), 'mixed sizes stay within one series');
  n.port.writeCurrentVgpuType(vf1!, typeId(n, 'L40S-16Q'));
  const after16 = creatable(n, vf2!);
  assert.ok(after16.length > 0);
  assert.ok(after16.every((id) => fbOf(id) <= 8 * 1024), `8 GB left, got ${after16.map(fbOf).join(',')}`);
  assert.ok(after16.includes(typeId(n, 'L40S-8Q')));
  // The toggle is refused once a type is configured.
  throwsErrno(() => n.setHeterogeneousMode(pf, false), 'EBUSY');
  return tools.heterogeneousMode(pf).then((mode) => assert.equal(mode, true));
});

void test('writing 0 clears a VF and gives the framebuffer back to every sibling', () => {
  const n = l40s();
  const [vf0, vf1] = vfsOf(n);
  const full = creatable(n, vf1!);
  n.port.writeCurrentVgpuType(vf0!, typeId(n, 'L40S-48Q'));
  assert.deepEqual(creatable(n, vf1!), [], 'a 48 GB profile fills the card');
  n.port.writeCurrentVgpuType(vf0!, 0);
  assert.equal(n.port.readNvidiaAttr(vf0!, 'current_vgpu_type')?.trim(), '0');
  assert.deepEqual(creatable(n, vf1!), full);
  assert.deepEqual(creatable(n, vf0!), full);
  // Clearing a free VF is harmless.
  n.port.writeCurrentVgpuType(vf0!, 0);
});

void test('types that are not creatable, garbage values and retyping a configured VF are refused', () => {
  const n = l40s();
  const [vf0, vf1] = vfsOf(n);
  const h100 = node({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  throwsErrno(() => n.port.writeCurrentVgpuType(vf0!, 999_999), 'EINVAL');
  throwsErrno(() => n.port.writeCurrentVgpuType(vf0!, typeId(h100, 'H100-4C')), 'EINVAL', /not creatable/);
  throwsErrno(() => n.backend.write('sys', `bus/pci/devices/${vf0}/nvidia/current_vgpu_type`, 'L40S-12Q'), 'EINVAL');
  throwsErrno(() => n.backend.write('sys', `bus/pci/devices/${vf0}/nvidia/current_vgpu_type`, '-1'), 'EINVAL');
  n.port.writeCurrentVgpuType(vf0!, typeId(n, 'L40S-6Q'));
  n.port.writeCurrentVgpuType(vf0!, typeId(n, 'L40S-6Q')); // the same type again is a no-op
  throwsErrno(() => n.port.writeCurrentVgpuType(vf0!, typeId(n, 'L40S-6Q') + 1), 'EBUSY', /write 0 first/);
  assert.equal(n.port.readNvidiaAttr(vf0!, 'current_vgpu_type')?.trim(), String(typeId(n, 'L40S-6Q')));
  assert.deepEqual(creatable(n, vf1!), [typeId(n, 'L40S-6Q')]);
  // Read-only attributes.
  throwsErrno(() => n.backend.write('sys', `bus/pci/devices/${vf0}/nvidia/creatable_vgpu_types`, '1'), 'EACCES');
});

void test('a VF held by a VM refuses type changes, clearing and vgpu_params with EBUSY until released', () => {
  const n = l40s({}, { profiles: ['L40S-8Q'] });
  const [vf0, vf1] = vfsOf(n);
  n.hold(vf0!);
  assert.deepEqual(n.heldDevices(), [vf0]);
  throwsErrno(() => n.port.writeCurrentVgpuType(vf0!, 0), 'EBUSY', /in use by a VM/);
  throwsErrno(() => n.port.writeVfVgpuParams(vf0!, 'frame_rate_limiter=0'), 'EBUSY');
  // Its free sibling is not affected.
  n.port.writeCurrentVgpuType(vf1!, typeId(n, 'L40S-8Q'));
  n.hold(vf1!.toUpperCase());
  throwsErrno(() => n.port.writeCurrentVgpuType(vf1!, 0), 'EBUSY');
  n.release(vf0!);
  n.port.writeCurrentVgpuType(vf0!, 0);
  n.port.writeVfVgpuParams(vf0!, 'frame_rate_limiter=0');
  assert.equal(n.port.readNvidiaAttr(vf0!, 'vgpu_params')?.trim(), 'frame_rate_limiter=0');
});

void test('driver-version quirk: 595.58.02 rejects a trailing newline, 550.127.06 accepts it; the port never sends one', () => {
  for (const [version, rejects] of [
    ['595.58.02', true],
    ['550.127.06', false],
  ] as const) {
    const n = l40s({ driverVersion: version });
    const [vf0, vf1] = vfsOf(n);
    const id = typeId(n, 'L40S-4Q');
    const rel = `bus/pci/devices/${vf0}/nvidia/current_vgpu_type`;
    if (rejects) {
      throwsErrno(() => n.backend.write('sys', rel, `${id}\n`), 'EINVAL', /trailing newline/);
      assert.equal(n.port.readNvidiaAttr(vf0!, 'current_vgpu_type')?.trim(), '0', 'nothing changed');
    } else {
      n.backend.write('sys', rel, `${id}\n`);
      assert.equal(n.port.readNvidiaAttr(vf0!, 'current_vgpu_type')?.trim(), String(id));
    }
    n.port.writeCurrentVgpuType(vf1!, id);
    assert.equal(n.port.readNvidiaAttr(vf1!, 'current_vgpu_type')?.trim(), String(id), `${version}: the port's write works`);
    assert.equal(n.port.readModuleVersion('nvidia'), version);
  }
});

void test('type IDs are synthetic and differ per driver version; the names do not', () => {
  const a = l40s({ driverVersion: '550.127.06' });
  const b = l40s({ driverVersion: '595.58.02' });
  const idsA = creatable(a, vfsOf(a)[0]!);
  const idsB = creatable(b, vfsOf(b)[0]!);
  assert.notDeepEqual(idsA, idsB);
  const names = (n: typeof a) => n.gpus[0]!.types.map((t) => t.name).sort();
  assert.deepEqual(names(a), names(b));
  assert.notEqual(typeId(a, 'L40S-12Q'), typeId(b, 'L40S-12Q'));
  // Deterministic for the same version.
  assert.deepEqual(creatable(l40s({ driverVersion: '550.127.06' }), vfsOf(a)[0]!), idsA);
  // Different boards under one version get different IDs too.
  const l4 = node({ gpus: [{ model: 'L4', mode: 'sriov-vgpu' }] });
  assert.notEqual(typeId(l4, 'L4-1Q'), typeId(b, 'L40S-1Q'));
});

void test('sriov_numvfs: 0 → N only, N → M is EBUSY, above total is ERANGE, disabling with held VFs is EBUSY', () => {
  const n = l40s({}, { vfsEnabled: false });
  const pf = pfOf(n);
  assert.equal(n.port.readPciAttr(pf, 'sriov_numvfs'), '0');
  assert.deepEqual(vfsOf(n), []);
  n.port.writeSriovNumVfs(pf, 4);
  const vfs = vfsOf(n);
  assert.equal(vfs.length, 4);
  for (const vf of vfs) {
    assert.ok(n.port.pciDeviceExists(vf));
    assert.equal(n.port.readPciLink(vf, 'physfn'), pf);
    assert.ok(n.port.hasNvidiaDir(vf));
  }
  throwsErrno(() => n.port.writeSriovNumVfs(pf, 8), 'EBUSY', /disable before enabling/);
  n.port.writeSriovNumVfs(pf, 4); // same count: no-op
  throwsErrno(() => n.port.writeSriovNumVfs(pf, 33), 'ERANGE');
  throwsErrno(() => n.backend.write('sys', `bus/pci/devices/${pf}/sriov_numvfs`, 'four'), 'EINVAL');
  n.hold(vfs[2]!);
  throwsErrno(() => n.port.writeSriovNumVfs(pf, 0), 'EBUSY');
  assert.equal(vfsOf(n).length, 4);
  n.release(vfs[2]!);
  n.port.writeSriovNumVfs(pf, 0);
  assert.deepEqual(vfsOf(n), []);
  assert.equal(n.port.pciDeviceExists(vfs[0]!), false, 'disabled VFs leave the bus');
  n.port.writeSriovNumVfs(pf, 32);
  assert.equal(vfsOf(n).length, 32);
});

void test('sriov_numvfs: configured transient unbindLock failures fail with EBUSY, then the write succeeds', () => {
  const n = l40s({ transientUnbindLockFailures: 2 }, { vfsEnabled: false });
  const pf = pfOf(n);
  throwsErrno(() => n.port.writeSriovNumVfs(pf, 32), 'EBUSY', /unbindLock/);
  throwsErrno(() => n.port.writeSriovNumVfs(pf, 32), 'EBUSY', /unbindLock/);
  assert.equal(vfsOf(n).length, 0);
  n.port.writeSriovNumVfs(pf, 32);
  assert.equal(vfsOf(n).length, 32);
  n.port.writeSriovNumVfs(pf, 0);
  assert.equal(vfsOf(n).length, 0, 'the failures were transient: later writes succeed');
});

void test('a VF that belongs to the vGPU manager refuses vfio-pci with EINVAL', () => {
  const n = l40s();
  const vf = vfsOf(n)[3]!;
  n.port.writeDriverOverride(vf, 'vfio-pci' as DriverName);
  n.port.unbindDriver(vf);
  assert.equal(n.port.readPciLink(vf, 'driver'), undefined);
  throwsErrno(() => n.port.bindDriver('vfio-pci' as DriverName, vf), 'EINVAL', /vGPU manager/);
  throwsErrno(() => n.port.probeDriver(vf), 'EINVAL');
  assert.equal(n.port.hasNvidiaDir(vf), false, 'an unbound VF has no nvidia/ directory');
  n.port.writeDriverOverride(vf, null);
  n.port.bindDriver('nvidia' as DriverName, vf);
  assert.equal(n.port.readPciLink(vf, 'driver'), 'nvidia');
  assert.ok(n.port.hasNvidiaDir(vf));
});

void test('sriov-manage enables all VFs and resets mixed-size mode; nvidia-smi lists the types with hex IDs', async () => {
  const n = l40s({}, { vfsEnabled: false, heterogeneous: true });
  const tools = new SimHostTools(n);
  const pf = pfOf(n);
  assert.equal(await tools.heterogeneousMode(pf), true);
  await tools.sriovManageEnable(pf);
  assert.equal(vfsOf(n).length, 32);
  assert.equal(await tools.heterogeneousMode(pf), false);
  assert.ok(n.port.sriovManageInstalled());
  const out = await tools.nvidiaSmiSupportedTypes(pf);
  assert.match(out!, /vGPU Type ID\s+:\s+0x[0-9a-f]+/);
  const parsed = parseNvidiaSmiSupportedTypes(out!);
  assert.deepEqual(
    parsed.map((e) => [e.id, e.name]),
    n.gpus[0]!.types.map((t) => [t.id, t.name]),
  );
  await tools.setHeterogeneousMode(pf, true);
  assert.equal(await tools.heterogeneousMode(pf), true);
  // Without sriov-manage (not a vGPU host), the tool is missing.
  const host = node({ gpus: [{ model: 'L40S', mode: 'host' }] });
  assert.equal(host.port.sriovManageInstalled(), false);
  await assert.rejects(new SimHostTools(host).sriovManageEnable(pfOf(host)), (e: unknown) => (e as { code?: string }).code === 'ENOENT');
});

void test('every SR-IOV model configures its smallest profile on a VF and shrinks its siblings', () => {
  for (const model of ['L4', 'L40', 'L40S', 'RTX6000-Ada', 'H100', 'H100-SXM', 'H200']) {
    const n = node({ gpus: [{ model, mode: 'sriov-vgpu' }] });
    const [vf0, vf1] = vfsOf(n);
    const before = creatable(n, vf1!);
    const t = n.gpus[0]!.types.find((x) => !x.migBacked)!;
    n.port.writeCurrentVgpuType(vf0!, t.id);
    assert.deepEqual(creatable(n, vf1!), [t.id], `${model}: homogeneous after ${t.profile}`);
    assert.ok(before.length > 1, model);
  }
});
