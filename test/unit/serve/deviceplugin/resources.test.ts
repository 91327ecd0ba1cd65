import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciIds } from '../../../../src/inventory/pciids.js';
import { passthroughNamer } from '../../../../src/serve/deviceplugin/passthrough-name.js';
import { collectResources, validateResourceNames } from '../../../../src/serve/deviceplugin/resources.js';
import { gpu, inventory, mixedNode, PCI_IDS_TEXT, pci, vf, L40S_12Q } from '../fixtures.js';

const namer = passthroughNamer(PciIds.fromText(PCI_IDS_TEXT));

test('groups VFs by profile, mdevs by type name, passthrough GPUs by PCI IDs name', () => {
  const { resources, problems } = collectResources(mixedNode(), { passthroughName: namer });
  assert.deepEqual(problems, []);
  const summary = resources.map((r) => [r.resourceName, r.kind, r.source, r.selectors, r.devices.map((d) => d.id)]);
  assert.deepEqual(summary, [
    ['nvidia.com/GA102GL_A10', 'pci', 'passthrough', ['10DE:2236'], ['0000:5e:00.0']],
    ['nvidia.com/GRID_T4-1Q', 'mdev', 'mdev-vgpu', ['GRID T4-1Q'], ['6f3a1e2c-0000-4000-8000-000000000001', '6f3a1e2c-0000-4000-8000-000000000002']],
    ['nvidia.com/GRID_T4-2Q', 'mdev', 'mdev-vgpu', ['GRID T4-2Q'], ['6f3a1e2c-0000-4000-8000-000000000003']],
    ['nvidia.com/L40S-12Q', 'pci', 'sriov-vgpu', ['10DE:26B9'], ['0000:18:00.5']],
    // the VF on the second card has no currentProfile: named through the catalog
    ['nvidia.com/L40S-24Q', 'pci', 'sriov-vgpu', ['10DE:26B9'], ['0000:18:00.4', '0000:af:00.4']],
  ]);
});

test('device entries carry what Allocate and the health check need', () => {
  const { resources } = collectResources(mixedNode(), { passthroughName: namer });
  const byId = new Map(resources.flatMap((r) => r.devices.map((d) => [d.id, d])));
  assert.deepEqual(byId.get('0000:af:00.4'), {
    id: '0000:af:00.4',
    source: 'sriov-vgpu',
    address: '0000:af:00.4',
    uuid: null,
    gpu: '0000:af:00.0',
    parent: null,
    iommuGroup: 200,
    vfioDev: null,
    numaNode: 1,
    profile: 'L40S-24Q',
    nvlinkIsland: null,
    expect: { vgpuTypeId: 1069 },
  });
  const mdev = byId.get('6f3a1e2c-0000-4000-8000-000000000001')!;
  assert.equal(mdev.parent, '0000:3b:00.0');
  assert.equal(mdev.profile, 'T4-1Q', 'an mdev without a type name on the instance takes its type directory\'s profile');
  assert.equal(mdev.iommuGroup, 40);
  assert.deepEqual(mdev.expect, { mdevTypeDir: 'nvidia-222' });
  const a10 = byId.get('0000:5e:00.0')!;
  assert.equal(a10.numaNode, -1);
  assert.equal(a10.vfioDev, 'vfio7');
  assert.deepEqual(a10.expect, { driver: 'vfio-pci' });
  assert.equal(a10.profile, null);
  for (const d of byId.values()) assert.ok(d.id.length <= 63, `${d.id} is longer than 63`);
});

test('overrides by profile, full type name, mdev profile, vendor:device or default name (case-insensitive)', () => {
  const { resources } = collectResources(mixedNode(), {
    passthroughName: namer,
    resourceNames: {
      'l40s-24q': 'example.com/big-vgpu',
      'NVIDIA L40S-12Q': 'example.com/small-vgpu',
      'T4-2Q': 'example.com/t4-two',
      '10DE:2236': 'example.com/a10',
      'nvidia.com/GRID_T4-1Q': 'example.com/t4-one',
    },
  });
  assert.deepEqual(
    resources.map((r) => r.resourceName),
    ['example.com/a10', 'example.com/big-vgpu', 'example.com/small-vgpu', 'example.com/t4-one', 'example.com/t4-two'],
  );
});

test('two profiles overridden to one name share a resource; a PCI and an mdev group cannot', () => {
  const { resources, problems } = collectResources(mixedNode(), {
    passthroughName: namer,
    resourceNames: { 'L40S-24Q': 'example.com/l40s', 'L40S-12Q': 'example.com/l40s', 'GRID T4-1Q': 'example.com/l40s' },
  });
  const l40s = resources.find((r) => r.resourceName === 'example.com/l40s')!;
  assert.equal(l40s.kind, 'pci');
  assert.deepEqual(l40s.devices.map((d) => d.id), ['0000:18:00.4', '0000:18:00.5', '0000:af:00.4']);
  assert.equal(problems.length, 2);
  assert.ok(problems.every((p) => p.code === 'resource-kind-conflict' && /cannot mix PCI functions and mdevs/.test(p.message)), JSON.stringify(problems));
});

test('devices that cannot be served are reported, not advertised', () => {
  const inv = inventory([
    gpu('0000:01:00.0', {
      catalog: [L40S_12Q],
      vfs: [vf('0000:01:00.4', 0, 999, null), vf('0000:01:00.5', 1, 1067, 'L40S-12Q', { iommuGroup: null }), vf('0000:01:00.6', 2, 1067, null)],
    }),
    gpu('0000:02:00.0', { framework: 'passthrough', pciOver: { iommuGroup: null, driver: 'vfio-pci' } }),
  ]);
  const { resources, problems } = collectResources(inv, { passthroughName: namer });
  assert.deepEqual(resources.map((r) => [r.resourceName, r.devices.map((d) => d.id)]), [['nvidia.com/L40S-12Q', ['0000:01:00.6']]]);
  assert.deepEqual(problems.map((p) => [p.code, p.device]), [
    ['unnamed-vgpu-type', '0000:01:00.4'],
    ['no-iommu-group', '0000:01:00.5'],
    ['no-iommu-group', '0000:02:00.0'],
  ]);
  assert.match(problems[0]!.message, /type 999.*catalog/);
});

test('host-driver GPUs and VFs without a type are not advertised', () => {
  const inv = inventory([gpu('0000:01:00.0', { framework: 'host-driver', vfs: [vf('0000:01:00.4', 0, 1067, 'L40S-12Q')] }), gpu('0000:02:00.0', { vfs: [vf('0000:02:00.4', 0, 0, null)] })]);
  assert.deepEqual(collectResources(inv, { passthroughName: namer }).resources, []);
});

test('a VF with its own IDs (otherFunctions) gets its own selector', () => {
  const inv = inventory([gpu('0000:01:00.0', { catalog: [L40S_12Q], vfs: [vf('0000:01:00.4', 0, 1067, 'L40S-12Q')] })], [pci('0000:01:00.4', { deviceId: '26ba' })]);
  assert.deepEqual(collectResources(inv, { passthroughName: namer }).resources[0]!.selectors, ['10DE:26BA']);
});

test('passthrough of an unknown device falls back to the hex ID; unknown names are never invented', () => {
  const inv = inventory([gpu('0000:02:00.0', { framework: 'passthrough', pciOver: { deviceId: 'ffff', driver: 'vfio-pci' } })]);
  const { resources } = collectResources(inv, { passthroughName: passthroughNamer(PciIds.empty()) });
  assert.equal(resources[0]!.resourceName, 'nvidia.com/ffff');
});

test('validateResourceNames names every bad override', () => {
  assert.doesNotThrow(() => validateResourceNames({ a: 'nvidia.com/x' }));
  assert.throws(
    () => validateResourceNames({ 'L40S-24Q': 'L40S-24Q', T4: 'kubernetes.io/t4' }),
    (err: Error) => /resourceNames\["L40S-24Q"\]/.test(err.message) && /resourceNames\["T4"\]/.test(err.message) && /reserved/.test(err.message),
  );
});
