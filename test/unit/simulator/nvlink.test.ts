/**
 * NVLink in the simulator and the inventory: the simulated nvidia-smi prints
 * it, the inventory reads it into islands, the device plugin carries them;
 * a GPU on vfio-pci is invisible to nvidia-smi, as on a real host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enrichWithHostTools, readInventory } from '../../../src/inventory/read.js';
import { nvlinkIslands } from '../../../src/inventory/topology.js';
import { createSimulatedNode, SimHostTools } from '../../../src/simulator/index.js';
import { collectResources } from '../../../src/serve/deviceplugin/resources.js';
import { InputError } from '../../../src/model/errors.js';

async function inventoryOf(spec: Parameters<typeof createSimulatedNode>[0]) {
  const node = createSimulatedNode(spec);
  const inv = readInventory(node.port);
  await enrichWithHostTools(inv, new SimHostTools(node));
  return { node, inv };
}

test('islands: connected groups named by their lowest address', () => {
  const islands = nvlinkIslands([
    ['0000:0f:00.0', '0000:07:00.0'],
    ['0000:47:00.0', '0000:0f:00.0'],
    ['0000:c1:00.0', '0000:b7:00.0'],
  ]);
  assert.deepEqual(Object.fromEntries(islands), {
    '0000:07:00.0': '0000:07:00.0',
    '0000:0f:00.0': '0000:07:00.0',
    '0000:47:00.0': '0000:07:00.0',
    '0000:b7:00.0': '0000:b7:00.0',
    '0000:c1:00.0': '0000:b7:00.0',
  });
});

test('a simulated HGX-like node: two NVLink islands read through nvidia-smi topo -m reach the device plugin', async () => {
  const { inv } = await inventoryOf({ driverVersion: '570.133.10', gpus: [{ model: 'H100-SXM', count: 4, mode: 'sriov-vgpu', profiles: ['H100XM-40C', 'H100XM-40C'] }], nvlink: [[0, 1], [2, 3]] });
  const addr = inv.gpus.map((g) => g.pci.address);
  assert.deepEqual(inv.gpus.map((g) => g.nvlinkIsland), [addr[0], addr[0], addr[2], addr[2]]);
  const { resources } = collectResources(inv, { passthroughName: () => 'nvidia.com/x' });
  const res = resources.find((r) => r.resourceName === 'nvidia.com/H100XM-40C')!;
  assert.equal(res.driverVersion, '570.133.10');
  assert.deepEqual([...new Set(res.devices.map((d) => `${d.gpu}@${d.nvlinkIsland}`))], addr.map((a, i) => `${a}@${addr[i < 2 ? 0 : 2]}`));
});

test('no NVLink, no nvidia-smi, or GPUs on vfio-pci: unknown islands, never an error', async () => {
  const plain = await inventoryOf({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }] });
  assert.deepEqual(plain.inv.gpus.map((g) => g.nvlinkIsland), [null, null]);
  const blind = await inventoryOf({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }], nvlink: [[0, 1]], nvidiaSmi: false });
  assert.deepEqual(blind.inv.gpus.map((g) => g.nvlinkIsland ?? null), [null, null]);
  // passthrough GPUs sit on vfio-pci: nvidia-smi does not see them or their links
  const pt = await inventoryOf({ gpus: [{ model: 'H100-SXM', count: 2, mode: 'passthrough' }, { model: 'H100-SXM', count: 2, mode: 'sriov-vgpu' }], nvlink: [[0, 1, 2, 3]] });
  assert.deepEqual(pt.inv.gpus.map((g) => [g.framework, g.nvlinkIsland ?? null]), [
    ['passthrough', null],
    ['passthrough', null],
    ['sriov-vgpu', pt.inv.gpus[2]!.pci.address],
    ['sriov-vgpu', pt.inv.gpus[2]!.pci.address],
  ]);
});

test('a spec naming a GPU the node lacks is refused with the range', () => {
  assert.throws(() => createSimulatedNode({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }], nvlink: [[0, 2]] }), (e: unknown) => e instanceof InputError && /nvlink\[0\] names GPU 2, but the node has GPUs 0 to 1/.test(e.message));
});
