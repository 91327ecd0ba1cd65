/**
 * readInventory over every simulated model in every mode it supports, the
 * real H200 capture, bad input (missing root, malformed files, dangling links,
 * unknown entries), and the catalog cache that names full cards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CatalogCache } from '../../../src/inventory/catalog-cache.js';
import { openSimulated } from '../../../src/machine/simulated.js';
import { PciIds } from '../../../src/inventory/pciids.js';
import { InventoryError, enrichWithHostTools, readInventory } from '../../../src/inventory/read.js';
import type { Inventory } from '../../../src/inventory/types.js';
import { SimHostTools, createSimulatedNode, materialize, type SimMode, type SimNodeSpec } from '../../../src/simulator/index.js';
import { DiskBackend } from '../../../src/sysfs/disk-backend.js';
import type { PciAddress } from '../../../src/model/pci.js';
import { SysfsPort } from '../../../src/sysfs/port.js';

const FIXTURE = path.resolve('test/fixtures/real-h200-vm');

/** What each simulated model must come out as: expected data, written down independently of the simulator. */
const MODELS: { key: string; deviceId: string; name: string; board: string; framework: 'sriov' | 'mdev'; mdevParents?: number }[] = [
  { key: 'L4', deviceId: '27b8', name: 'L4', board: 'L4', framework: 'sriov' },
  { key: 'L40', deviceId: '26b5', name: 'L40', board: 'L40', framework: 'sriov' },
  { key: 'L40S', deviceId: '26b9', name: 'L40S', board: 'L40S', framework: 'sriov' },
  { key: 'RTX6000-Ada', deviceId: '26b1', name: 'RTX 6000 Ada Generation', board: 'RTX6000-Ada', framework: 'sriov' },
  { key: 'H100', deviceId: '2331', name: 'H100 PCIe', board: 'H100', framework: 'sriov' },
  { key: 'H100-SXM', deviceId: '2330', name: 'H100 SXM5 80GB', board: 'H100XM', framework: 'sriov' },
  { key: 'H200', deviceId: '2335', name: 'H200', board: 'H200X', framework: 'sriov' },
  { key: 'A100', deviceId: '20b5', name: 'A100 80GB PCIe', board: 'A100D', framework: 'mdev', mdevParents: 20 },
  { key: 'A100-40GB', deviceId: '20f1', name: 'A100 PCIe 40GB', board: 'A100', framework: 'mdev', mdevParents: 10 },
  { key: 'A10', deviceId: '2236', name: 'A10', board: 'A10', framework: 'mdev', mdevParents: 24 },
  { key: 'A16', deviceId: '25b6', name: 'A16', board: 'A16', framework: 'mdev', mdevParents: 16 },
  { key: 'T4', deviceId: '1eb8', name: 'T4', board: 'T4', framework: 'mdev', mdevParents: 1 },
];

function withTemp<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-inv-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function diskPort(dir: string): SysfsPort {
  return new SysfsPort(new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') }));
}

/** Materialise a simulated node, let `mutate` damage the tree, then read it from disk. */
function readDamaged(spec: SimNodeSpec, mutate: (sys: string, n: ReturnType<typeof createSimulatedNode>) => void): Inventory {
  return withTemp((dir) => {
    const n = createSimulatedNode(spec);
    materialize(n, dir);
    mutate(path.join(dir, 'sys'), n);
    return readInventory(diskPort(dir));
  });
}

const devDir = (sys: string, addr: string) => fs.realpathSync(path.join(sys, 'bus/pci/devices', addr));
/** A device's directory as the port names it in messages: through the bus/pci/devices link. */
const busDir = (sys: string, addr: string) => path.join(sys, 'bus/pci/devices', addr);

for (const m of MODELS) {
  const modes: SimMode[] = [m.framework === 'sriov' ? 'sriov-vgpu' : 'mdev-vgpu', 'passthrough', 'host'];
  for (const mode of modes) {
    void test(`inventory: ${m.key} in ${mode}`, () => {
      const n = createSimulatedNode({ gpus: [{ model: m.key, mode, numaNode: 1 }] });
      const inv = readInventory(n.port);
      assert.equal(inv.schemaVersion, 1);
      assert.deepEqual(inv.warnings, []);
      assert.equal(inv.gpus.length, 1);
      const g = inv.gpus[0]!;
      assert.equal(g.index, 0);
      assert.equal(g.pci.vendorId, '10de');
      assert.equal(g.pci.deviceId, m.deviceId);
      assert.equal(g.model.name, m.name);
      assert.doesNotMatch(g.model.name, /^(10de:)?[0-9a-f]{4}$/, 'never a bare hex ID');
      assert.equal(g.model.profileBoard, m.board);
      assert.equal(g.model.vgpuFramework, m.framework);
      assert.deepEqual(g.warnings, []);
      // NUMA and IOMMU.
      assert.equal(g.pci.numaNode, 1);
      assert.equal(typeof g.pci.iommuGroup, 'number');
      assert.ok(g.pci.iommuGroupMembers.includes(g.pci.address));
      if (m.key === 'RTX6000-Ada') {
        const audio = g.pci.address.replace(/\.0$/, '.1');
        assert.deepEqual(g.companions, [audio]);
        assert.deepEqual(g.pci.iommuGroupMembers, [g.pci.address, audio]);
        assert.deepEqual(inv.otherFunctions.map((f) => f.address), [audio]);
        assert.equal(inv.otherFunctions[0]!.classCode, '040300');
      } else {
        assert.deepEqual(g.companions, []);
        assert.deepEqual(inv.otherFunctions, []);
      }
      assert.equal(inv.node.iommuEnabled, true);
      const expectedFramework = { 'sriov-vgpu': 'sriov-vgpu', 'mdev-vgpu': 'mdev-vgpu', passthrough: 'passthrough', host: 'host-driver' }[mode];
      assert.equal(g.framework, expectedFramework);
      assert.equal(g.unusableReason, null);
      const c = g.capabilities;
      const vgpuMode = mode === 'sriov-vgpu' || mode === 'mdev-vgpu';
      assert.equal(inv.node.vgpuHostDriver, vgpuMode);
      assert.equal(c.vgpu.usable, vgpuMode, `vGPU capability: ${c.vgpu.reason}`);
      assert.equal(c.containers.usable, mode === 'host', `containers: ${c.containers.reason}`);
      assert.equal(c.passthrough.usable, true, `passthrough: ${c.passthrough.reason}`);
      if (!vgpuMode) assert.match(c.vgpu.reason ?? '', /vGPU manager/);
      if (mode === 'passthrough') {
        assert.equal(g.pci.driver, 'vfio-pci');
        assert.equal(g.pci.driverOverride, 'vfio-pci');
        assert.match(g.pci.vfioDev ?? '', /^vfio[0-9]+$/);
      } else {
        assert.equal(g.pci.driver, 'nvidia');
        assert.equal(g.pci.driverOverride, null);
      }
      // Catalog, VFs, mdev parents.
      if (!vgpuMode) {
        assert.deepEqual(g.catalog, []);
        assert.deepEqual(g.vfs, []);
        assert.deepEqual(g.mdevParents, []);
        return;
      }
      assert.ok(g.catalog.length >= 10, `${g.catalog.length} types`);
      for (const t of g.catalog) {
        assert.ok(t.profile.startsWith(`${m.board}-`), t.profile);
        assert.equal(t.name, `${m.key === 'T4' ? 'GRID' : 'NVIDIA'} ${t.profile}`);
        assert.ok(t.framebufferMiB !== null && t.framebufferMiB >= 1024, `${t.profile} framebuffer`);
        assert.ok(t.maxInstances !== null && t.maxInstances >= 1);
        assert.equal(t.source, m.framework === 'sriov' ? 'creatable' : 'mdev');
      }
      assert.deepEqual(g.catalog.map((t) => t.id), [...g.catalog.map((t) => t.id)].sort((a, b) => a - b), 'sorted by ID');
      if (m.framework === 'sriov') {
        assert.equal(g.pci.sriov?.totalVfs, 32);
        assert.equal(g.pci.sriov?.numVfs, 32);
        assert.equal(g.vfs.length, 32);
        const groups = new Set<number | null>();
        for (const [i, v] of g.vfs.entries()) {
          assert.equal(v.index, i);
          assert.equal(v.address, g.pci.sriov!.vfs[i]);
          assert.equal(v.currentTypeId, 0);
          assert.equal(v.currentProfile, null);
          assert.equal(v.creatableTypeIds.length, g.catalog.length);
          assert.equal(v.numaNode, 1);
          assert.equal(v.driver, 'nvidia');
          assert.match(v.vfioDev ?? '', /^vfio[0-9]+$/);
          groups.add(v.iommuGroup);
        }
        assert.equal(groups.size, 32, 'each VF has its own IOMMU group');
        assert.ok(!groups.has(null));
        assert.deepEqual(g.mdevParents, []);
      } else {
        assert.deepEqual(g.vfs, [], 'mdev cards have no SR-IOV vGPU VFs');
        assert.equal(g.mdevParents.length, m.mdevParents);
        if (m.key === 'T4') {
          assert.equal(g.mdevParents[0]!.address, g.pci.address);
          assert.equal(g.pci.sriov, null);
        } else {
          assert.deepEqual(g.mdevParents.map((p) => p.address), g.pci.sriov!.vfs);
        }
        for (const p of g.mdevParents) {
          assert.equal(p.types.length, g.catalog.length);
          assert.deepEqual(p.instances, []);
          for (const t of p.types) {
            assert.equal(t.dir, `nvidia-${t.id}`);
            assert.ok(t.availableInstances >= 1, `${t.name} available on an empty card`);
            assert.equal(t.deviceApi, 'vfio-pci');
          }
        }
        assert.equal(inv.node.mdevBusPresent, true);
      }
    });
  }
}

void test('inventory: configured SR-IOV VFs and mdev instances are named by profile; free VFs list what still fits', () => {
  const n = createSimulatedNode({
    gpus: [
      { model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q', 'L40S-12Q'] },
      { model: 'A10', mode: 'mdev-vgpu', profiles: ['A10-4Q', 'A10-4Q'] },
      { model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-2Q'] },
    ],
  });
  const inv = readInventory(n.port);
  const [l40s, a10, t4] = inv.gpus;
  assert.deepEqual(inv.gpus.map((g) => g.index), [0, 1, 2]);
  const q12 = l40s!.catalog.find((t) => t.profile === 'L40S-12Q')!;
  assert.deepEqual(l40s!.catalog, [q12], 'only the configured size is creatable on a homogeneous card');
  assert.deepEqual(
    l40s!.vfs.slice(0, 4).map((v) => [v.currentTypeId, v.currentProfile]),
    [
      [q12.id, 'L40S-12Q'],
      [q12.id, 'L40S-12Q'],
      [q12.id, 'L40S-12Q'],
      [0, null],
    ],
  );
  assert.deepEqual(l40s!.vfs[0]!.creatableTypeIds, []);
  assert.deepEqual(l40s!.vfs[3]!.creatableTypeIds, [q12.id]);
  const a10Instances = a10!.mdevParents.flatMap((p) => p.instances);
  assert.equal(a10Instances.length, 2);
  for (const i of a10Instances) {
    assert.equal(i.typeName, 'NVIDIA A10-4Q');
    assert.ok(a10!.pci.sriov!.vfs.includes(i.parent), 'an Ampere mdev sits on a VF');
    assert.equal(typeof i.iommuGroup, 'number');
  }
  const t4Instances = t4!.mdevParents[0]!.instances;
  assert.equal(t4Instances.length, 1);
  assert.equal(t4Instances[0]!.typeName, 'GRID T4-2Q');
  assert.equal(t4Instances[0]!.parent, t4!.pci.address);
  assert.equal(t4!.mdevParents[0]!.types.find((t) => t.profile === 'T4-2Q')!.availableInstances, 7);
});

void test('catalog cache: filled from free VFs, it names configured VFs once the card is full', async () => {
  await withTemp(async (state) => {
    const cache = new CatalogCache(state);
    const n = createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
    // Reading alone never writes: the machine records what the free VFs list.
    readInventory(n.port, { catalogCache: cache });
    assert.equal(cache.get('26b9', '595.58.02'), undefined, 'a read wrote the catalog cache');
    const empty = await openSimulated(n, { stateDir: state }).inventory();
    const q12 = empty.gpus[0]!.catalog.find((t) => t.profile === 'L40S-12Q')!;
    assert.equal(cache.get('26b9', '595.58.02')?.length, empty.gpus[0]!.catalog.length, 'every creatable type was cached');
    // Fill the card: no VF lists anything any more.
    for (const v of empty.gpus[0]!.vfs.slice(0, 4)) n.port.writeCurrentVgpuType(v.address as PciAddress, q12.id);
    const withoutCache = readInventory(n.port);
    const g0 = withoutCache.gpus[0]!;
    assert.equal(g0.catalog.length, 0);
    assert.equal(g0.vfs[0]!.currentProfile, null);
    const w = g0.warnings.find((x) => x.code === 'unknown-type-id');
    assert.ok(w, 'a warning says the type cannot be named');
    assert.match(w.message, new RegExp(`type ID ${q12.id}`));
    assert.equal(w.path, `/sys/bus/pci/devices/${g0.vfs[0]!.address}/nvidia/current_vgpu_type`);
    const withCache = readInventory(n.port, { catalogCache: new CatalogCache(state) });
    const g1 = withCache.gpus[0]!;
    assert.deepEqual(g1.vfs.slice(0, 4).map((v) => v.currentProfile), ['L40S-12Q', 'L40S-12Q', 'L40S-12Q', 'L40S-12Q']);
    assert.equal(g1.catalog.find((t) => t.id === q12.id)?.source, 'cache');
    assert.deepEqual(g1.warnings, []);
    // Without a cache, nvidia-smi (the host tools) fills the gap.
    await enrichWithHostTools(withoutCache, new SimHostTools(n));
    assert.equal(g0.vfs[0]!.currentProfile, 'L40S-12Q');
    assert.equal(g0.catalog.find((t) => t.id === q12.id)?.source, 'nvidia-smi');
    assert.equal(g0.heterogeneousMode, false);
    assert.ok(!g0.warnings.some((x) => x.code === 'unknown-type-id'), 'the warning is gone once the name is known');
    // The cache is per driver version: another version does not reuse these IDs.
    const other = createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q', 'L40S-12Q', 'L40S-12Q'] }], driverVersion: '550.127.06' });
    const inv = readInventory(other.port, { catalogCache: new CatalogCache(state) });
    assert.equal(inv.gpus[0]!.vfs[0]!.currentProfile, null);
  });
});

void test('the real H200 capture: one H200 on the host driver, containers only, no passthrough without an IOMMU, no vGPU', () => {
  const port = new SysfsPort(new DiskBackend({ sys: path.join(FIXTURE, 'sys'), dev: path.join(FIXTURE, 'dev'), host: path.join(FIXTURE, 'host') }));
  const inv = readInventory(port);
  assert.equal(inv.gpus.length, 1);
  const g = inv.gpus[0]!;
  assert.equal(g.pci.address, '0000:00:06.0');
  assert.equal(g.pci.deviceId, '2335');
  assert.equal(g.pci.subsystemDeviceId, '18bf');
  assert.equal(g.pci.classCode, '030200');
  assert.equal(g.model.name, 'H200');
  assert.equal(g.framework, 'host-driver');
  assert.equal(g.pci.driver, 'nvidia');
  assert.equal(g.pci.driverOverride, null);
  assert.equal(g.pci.numaNode, -1);
  assert.equal(g.pci.iommuGroup, null);
  assert.deepEqual(g.pci.iommuGroupMembers, []);
  assert.equal(g.pci.sriov, null);
  assert.equal(g.pci.physfn, null);
  assert.deepEqual(g.vfs, []);
  assert.deepEqual(g.mdevParents, []);
  assert.deepEqual(g.catalog, []);
  assert.deepEqual(g.capabilities.containers, { usable: true, reason: null });
  assert.equal(g.capabilities.passthrough.usable, false);
  assert.match(g.capabilities.passthrough.reason!, /IOMMU is off/);
  assert.equal(g.capabilities.vgpu.usable, false);
  assert.match(g.capabilities.vgpu.reason!, /vGPU manager/);
  assert.equal(inv.node.iommuEnabled, false);
  assert.equal(inv.node.vgpuHostDriver, false);
  assert.equal(inv.node.mdevBusPresent, false);
  assert.deepEqual(inv.node.modules, ['nvidia', 'nvidia_uvm']);
  assert.deepEqual(inv.node.vfioDrivers, ['nvidia']);
  assert.deepEqual(inv.warnings, []);
  // With the PCI IDs sample the function's name comes from the database spelling, the model stays H200.
  const ids = PciIds.load(path.resolve('test/fixtures/pci.ids.sample'));
  const named = readInventory(port, { pciIds: ids });
  assert.equal(named.gpus[0]!.model.name, 'H200');
  assert.doesNotMatch(named.gpus[0]!.pci.name, /^10de:/);
});

void test('bad input: a missing root or a tree without bus/pci/devices is an InventoryError naming the path', () => {
  withTemp((dir) => {
    const missing = path.join(dir, 'nope');
    const port = new SysfsPort(new DiskBackend({ sys: missing, dev: missing, host: missing }));
    assert.throws(() => readInventory(port), (e: unknown) => e instanceof InventoryError && e.message.includes(path.join(missing, 'bus/pci/devices')) && /--sysfs-root/.test(e.message));
    fs.mkdirSync(path.join(dir, 'sys/bus'), { recursive: true });
    assert.throws(() => readInventory(diskPort(dir)), InventoryError);
    fs.mkdirSync(path.join(dir, 'sys/bus/pci/devices'), { recursive: true });
    const empty = readInventory(diskPort(dir));
    assert.deepEqual(empty.gpus, []);
    assert.equal(empty.node.iommuEnabled, false);
  });
});

void test('bad input: malformed attribute files become warnings naming the file; the rest of the inventory stays', () => {
  const spec: SimNodeSpec = { gpus: [{ model: 'L40S', count: 3, mode: 'sriov-vgpu', profiles: ['L40S-4Q'] }, { model: 'T4', mode: 'mdev-vgpu' }] };
  let files: Record<string, string> = {};
  const inv = readDamaged(spec, (sys, n) => {
    const [g0, g1, g2, t4] = n.gpus;
    const vf = g0!.vfs[0]!.fn.addr;
    const t4type = `nvidia-${t4!.types[0]!.id}`;
    files = {
      numa: path.join(busDir(sys, g0!.pf.addr), 'numa_node'),
      vgpu: path.join(busDir(sys, vf), 'nvidia/current_vgpu_type'),
      vendor: path.join(busDir(sys, g1!.pf.addr), 'vendor'),
      total: path.join(busDir(sys, g2!.pf.addr), 'sriov_totalvfs'),
      avail: path.join(busDir(sys, t4!.pf.addr), 'mdev_supported_types', t4type, 'available_instances'),
      creatable: path.join(busDir(sys, g0!.vfs[1]!.fn.addr), 'nvidia/creatable_vgpu_types'),
    };
    fs.writeFileSync(files.numa!, 'zero\n');
    fs.writeFileSync(files.vgpu!, 'L40S-4Q\n');
    fs.writeFileSync(files.vendor!, '10de\n'); // no 0x
    fs.writeFileSync(files.total!, '-3\n');
    fs.writeFileSync(files.avail!, 'lots\n');
    fs.writeFileSync(files.creatable!, '\u0000\u0001garbage\nID : Name\n12 : ../../etc\n');
  });
  const all = [...inv.warnings, ...inv.gpus.flatMap((g) => g.warnings)];
  const about = (file: string) => all.filter((w) => w.path === file);
  for (const [what, file] of Object.entries(files)) {
    if (what === 'creatable') continue;
    const ws = about(file);
    assert.equal(ws.length, 1, `one warning for ${what} (${file}); got ${JSON.stringify(all, null, 1)}`);
    assert.equal(ws[0]!.code, 'malformed-attribute');
  }
  // The GPU with a malformed vendor is not recognised; the other three are.
  assert.equal(inv.gpus.length, 3);
  const [g0, g2, t4] = inv.gpus;
  assert.equal(g0!.pci.numaNode, -1);
  assert.equal(g0!.vfs[0]!.currentTypeId, 0);
  assert.equal(g0!.vfs.length, 32);
  assert.equal(g2!.pci.sriov, null, 'no SR-IOV info from a malformed sriov_totalvfs');
  assert.equal(t4!.framework, 'mdev-vgpu');
  assert.equal(t4!.mdevParents[0]!.types[0]!.availableInstances, 0);
  // A garbage creatable list yields nothing from it, and no hostile name enters the catalog.
  assert.deepEqual(g0!.vfs[1]!.creatableTypeIds, []);
  assert.ok(g0!.catalog.every((t) => !t.name.includes('/')));
});

void test('bad input: dangling links, unknown entries and unreadable files are warnings naming the file', () => {
  const spec: SimNodeSpec = { gpus: [{ model: 'L40S', count: 3, mode: 'host' }, { model: 'RTX6000-Ada', mode: 'host' }] };
  let paths: Record<string, string> = {};
  const inv = readDamaged(spec, (sys, n) => {
    const [g0, g1, g2] = n.gpus;
    const devs = path.join(sys, 'bus/pci/devices');
    paths = {
      group: path.join(devs, g0!.pf.addr, 'iommu_group'),
      vanished: path.join(devs, g1!.pf.addr),
      readme: path.join(devs, 'README'),
      weird: path.join(devs, '0000:zz:00.0'),
      eisdir: path.join(devs, g2!.pf.addr, 'modalias'),
    };
    // iommu_group pointing to a group that does not exist.
    fs.rmSync(path.join(sys, 'kernel/iommu_groups', String(g0!.pf.group)), { recursive: true });
    // A GPU whose device directory vanished.
    fs.rmSync(devDir(sys, g1!.pf.addr), { recursive: true });
    fs.writeFileSync(paths.readme!, 'not a device\n');
    fs.mkdirSync(paths.weird!);
    const modalias = path.join(devDir(sys, g2!.pf.addr), 'modalias');
    fs.rmSync(modalias);
    fs.mkdirSync(modalias);
  });
  const all = [...inv.warnings, ...inv.gpus.flatMap((g) => g.warnings)];
  const find = (p: string, code: string | RegExp) => all.find((w) => w.path === p && (typeof code === 'string' ? w.code === code : code.test(w.code)));
  assert.ok(find(paths.group!, 'dangling-link'), JSON.stringify(all, null, 1));
  assert.ok(find(paths.vanished!, 'dangling-link'));
  assert.ok(find(paths.readme!, 'unknown-entry'));
  assert.ok(find(paths.weird!, 'unknown-entry'));
  const eisdir = all.find((w) => w.path?.endsWith('/modalias') && w.code === 'read-eisdir');
  assert.ok(eisdir, 'a directory where an attribute should be is reported');
  assert.match(eisdir.message, /EISDIR/);
  for (const w of all) assert.ok(w.message.length > 10 && !w.message.includes('\n'), w.message);
  // Partial inventory: the other GPUs are all there.
  assert.equal(inv.gpus.length, 3);
  const g0 = inv.gpus[0]!;
  assert.equal(g0.pci.iommuGroup !== null ? g0.pci.iommuGroupMembers.length : 0, 0, 'no members from a missing group');
  assert.equal(inv.gpus[1]!.pci.modalias, null);
  assert.equal(inv.gpus[2]!.model.name, 'RTX 6000 Ada Generation');
  assert.equal(inv.gpus[2]!.companions.length, 1);
});

void test('bad input: a virtfn link to a non-PCI target and junk in mdev_supported_types are reported, not followed', () => {
  const spec: SimNodeSpec = { gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }, { model: 'T4', mode: 'mdev-vgpu' }] };
  let virtfn = '';
  let types = '';
  const inv = readDamaged(spec, (sys, n) => {
    const [l40s, t4] = n.gpus;
    virtfn = path.join(sys, 'bus/pci/devices', l40s!.pf.addr, 'virtfn31');
    fs.rmSync(virtfn);
    fs.symlinkSync('../../../../etc', virtfn);
    types = path.join(devDir(sys, t4!.pf.addr), 'mdev_supported_types');
    fs.mkdirSync(path.join(types, 'not a type'));
  });
  const all = [...inv.warnings, ...inv.gpus.flatMap((g) => g.warnings)];
  assert.ok(all.some((w) => w.code === 'malformed-link' && w.path?.endsWith('/virtfn31')), JSON.stringify(all, null, 1));
  assert.equal(inv.gpus[0]!.vfs.length, 31);
  const junk = all.find((w) => w.code === 'unknown-entry' && w.message.includes('not a type'));
  assert.ok(junk);
  assert.ok(junk.path?.endsWith('/mdev_supported_types'));
  assert.ok(inv.gpus[1]!.mdevParents[0]!.types.length > 0);
});

void test('no-IOMMU host: passthrough and SR-IOV vGPU say why they are not usable', () => {
  const n = createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }, { model: 'L4', mode: 'host' }], iommu: false });
  const inv = readInventory(n.port);
  assert.equal(inv.node.iommuEnabled, false);
  for (const g of inv.gpus) {
    assert.equal(g.pci.iommuGroup, null);
    assert.equal(g.capabilities.passthrough.usable, false);
    assert.match(g.capabilities.passthrough.reason!, /IOMMU is off/);
  }
  assert.equal(inv.gpus[0]!.capabilities.vgpu.usable, false);
  assert.match(inv.gpus[0]!.capabilities.vgpu.reason!, /need the IOMMU/);
  const pt = readInventory(createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'passthrough' }], iommu: false }).port);
  assert.equal(pt.gpus[0]!.framework, 'unusable');
  assert.match(pt.gpus[0]!.unusableReason!, /no driver is bound/);
});
