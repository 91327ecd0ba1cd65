import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PciIds } from '../../../../src/inventory/pciids.js';
import { AllocationError, allocateContainer, deviceSpecsFor, preferredAllocation, type AllocationContext } from '../../../../src/serve/deviceplugin/allocate.js';
import { passthroughNamer } from '../../../../src/serve/deviceplugin/passthrough-name.js';
import { collectResources, type ResourceSpec } from '../../../../src/serve/deviceplugin/resources.js';
import { mixedNode, PCI_IDS_TEXT } from '../fixtures.js';

const { resources } = collectResources(mixedNode(), { passthroughName: passthroughNamer(PciIds.fromText(PCI_IDS_TEXT)) });
const res = (name: string): ResourceSpec => resources.find((r) => r.resourceName === name)!;

function ctx(r: ResourceSpec, unhealthy: string[] = [], iommufd = false): AllocationContext {
  return { resourceName: r.resourceName, kind: r.kind, devices: new Map(r.devices.map((d) => [d.id, d])), unhealthy: (id) => (unhealthy.includes(id) ? 'its vGPU type is gone' : null), iommufd, driverVersion: r.driverVersion };
}

const specs = (paths: string[]) => paths.map((p) => ({ container_path: p, host_path: p, permissions: 'rwm' }));

test('SR-IOV VFs: PCI_RESOURCE_ env with exactly the allocated addresses, group and vfio cdev nodes', () => {
  const out = allocateContainer(ctx(res('nvidia.com/L40S-24Q')), ['0000:af:00.4', '0000:18:00.4']);
  assert.deepEqual(out.envs, { 'PCI_RESOURCE_NVIDIA_COM_L40S-24Q': '0000:af:00.4,0000:18:00.4' });
  // 0000:18:00.4 has vfio-dev vfio0, 0000:af:00.4 has none
  assert.deepEqual(out.devices, specs(['/dev/vfio/vfio', '/dev/vfio/200', '/dev/vfio/100', '/dev/vfio/devices/vfio0']));
  assert.deepEqual(out.mounts, []);
  assert.deepEqual(out.cdi_devices, []);
});

test('mdevs: MDEV_PCI_RESOURCE_ env with UUIDs', () => {
  const out = allocateContainer(ctx(res('nvidia.com/GRID_T4-1Q')), ['6f3a1e2c-0000-4000-8000-000000000002']);
  assert.deepEqual(out.envs, { 'MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q': '6f3a1e2c-0000-4000-8000-000000000002' });
  assert.deepEqual(out.devices, specs(['/dev/vfio/vfio', '/dev/vfio/41']));
});

test('passthrough with iommufd: /dev/iommu added once', () => {
  const out = allocateContainer(ctx(res('nvidia.com/GA102GL_A10'), [], true), ['0000:5e:00.0']);
  assert.deepEqual(out.envs, { PCI_RESOURCE_NVIDIA_COM_GA102GL_A10: '0000:5e:00.0' });
  assert.deepEqual(out.devices, specs(['/dev/vfio/vfio', '/dev/vfio/50', '/dev/vfio/devices/vfio7', '/dev/iommu']));
});

test('device specs are deduplicated when devices share a group', () => {
  const r = res('nvidia.com/GRID_T4-1Q');
  const shared = r.devices.map((d) => ({ ...d, iommuGroup: 9 }));
  assert.deepEqual(deviceSpecsFor(shared, false), specs(['/dev/vfio/vfio', '/dev/vfio/9']));
});

test('unknown, unhealthy, repeated and empty requests are refused with clear errors', () => {
  const r = res('nvidia.com/L40S-24Q');
  const expectErr = (fn: () => unknown, reason: string, re: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof AllocationError && e.reason === reason && re.test(e.message));
  expectErr(() => allocateContainer(ctx(r), ['0000:18:00.5']), 'unknown-device', /^Allocate for nvidia.com\/L40S-24Q: device "0000:18:00.5" is not a device of this resource/);
  expectErr(() => allocateContainer(ctx(r, ['0000:18:00.4']), ['0000:af:00.4', '0000:18:00.4']), 'unhealthy-device', /nvidia.com\/L40S-24Q: device 0000:18:00.4 is Unhealthy/);
  expectErr(() => allocateContainer(ctx(r), ['0000:af:00.4', '0000:af:00.4']), 'duplicate-device', /listed twice/);
  expectErr(() => allocateContainer(ctx(r), []), 'empty-request', /lists no device IDs/);
});

// ---------------------------------------------------------------- preferred allocation

const numa: Record<string, number> = { a0: 0, a1: 0, a2: 0, b0: 1, b1: 1, b2: 1, b3: 1, c0: 2, u0: -1 };
const numaOf = (id: string) => numa[id] ?? -1;

test('preferred: fits on the tightest single NUMA node', () => {
  assert.deepEqual(preferredAllocation(['b3', 'a0', 'b0', 'a1', 'a2', 'b1', 'b2'], [], 2, numaOf), ['a0', 'a1']);
  assert.deepEqual(preferredAllocation(['b3', 'a0', 'b0', 'a1', 'a2', 'b1', 'b2'], [], 4, numaOf), ['b0', 'b1', 'b2', 'b3']);
  assert.deepEqual(preferredAllocation(['c0', 'a0', 'a1', 'b0'], [], 1, numaOf), ['b0']);
});

test('preferred: must-include devices are kept and their NUMA node is filled first', () => {
  assert.deepEqual(preferredAllocation(['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'b3'], ['b2'], 3, numaOf), ['b2', 'b0', 'b1']);
  assert.deepEqual(preferredAllocation(['a0', 'b0'], ['a0', 'b0'], 2, numaOf), ['a0', 'b0']);
  // must-include node too small: another node that fits the rest
  assert.deepEqual(preferredAllocation(['c0', 'a0', 'a1', 'a2'], ['c0'], 3, numaOf), ['c0', 'a0', 'a1']);
});

test('preferred: spills over the fullest nodes, unknown NUMA last', () => {
  assert.deepEqual(preferredAllocation(['a0', 'a1', 'b0', 'b1', 'b2', 'u0'], [], 5, numaOf), ['b0', 'b1', 'b2', 'a0', 'a1']);
  assert.deepEqual(preferredAllocation(['a0', 'u0'], [], 2, numaOf), ['a0', 'u0']);
});

test('preferred: properties (size, must-include, subset, one node when possible)', () => {
  const ids = Object.keys(numa);
  fc.assert(
    fc.property(fc.subarray(ids, { minLength: 1 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 3 }), (avail, size0, mustN) => {
      const size = Math.min(size0, avail.length);
      const must = avail.slice(0, Math.min(mustN, size));
      const out = preferredAllocation(avail, must, size, numaOf);
      assert.equal(out.length, size);
      assert.equal(new Set(out).size, out.length);
      for (const m of must) assert.ok(out.includes(m), `must-include ${m} missing from ${out}`);
      for (const o of out) assert.ok(avail.includes(o), `${o} is not available`);
      if (must.length === 0) {
        const nodes = new Map<number, number>();
        for (const a of avail) if (numaOf(a) >= 0) nodes.set(numaOf(a), (nodes.get(numaOf(a)) ?? 0) + 1);
        if ([...nodes.values()].some((n) => n >= size)) assert.equal(new Set(out.map(numaOf)).size, 1, `expected one node: ${out}`);
      }
    }),
  );
});
