// `vmgpu discover` on a full card whose vGPU types nothing names (issue 11, defect 1): it says which vGPUs are unknown, what vmgpu does about them, and how to name them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDiscover } from '../../../src/cli/discover.js';
import { openSimulated } from '../../../src/machine/simulated.js';
import { createSimulatedNode } from '../../../src/simulator/index.js';

void test('discover lists the unknown vGPUs by GPU, says they are left alone, and gives every way to name them', async () => {
  const sim = createSimulatedNode({ nvidiaSmi: false, gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-24Q', 'L40S-24Q'] }] });
  const inv = await openSimulated(sim).inventory();
  const out = formatDiscover(inv);
  assert.match(out, /Unknown vGPU types: vmgpu leaves these GPUs exactly as they are/);
  for (const g of inv.gpus) {
    const vfs = g.vfs.filter((v) => v.currentTypeId !== 0);
    assert.match(out, new RegExp(`GPU ${g.index} ${g.pci.address} \\(L40S\\): ${vfs.map((v) => v.address).join(', ')} hold type ID ${vfs[0]!.currentTypeId}`));
  }
  assert.match(out, /nvidia-smi/);
  assert.match(out, /agent\.driverRoot/);
  assert.match(out, /same card \(PCI device ID 26b9\) and driver version 595\.58\.02/);
  assert.match(out, /docs\/troubleshooting\.md/);
});

void test('discover says nothing of unknown types when every type is named', async () => {
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu', profiles: ['L40S-24Q', 'L40S-24Q'] }] });
  assert.doesNotMatch(formatDiscover(await openSimulated(sim).inventory()), /Unknown vGPU types/);
});
