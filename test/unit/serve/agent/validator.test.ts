// The node validator (`vmgpu validate` and the agent): each failure says how to fix it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateNode } from '../../../../src/serve/agent/validator.js';
import { createSimulatedNode } from '../../../../src/simulator/index.js';
import { readInventory } from '../../../../src/inventory/read.js';

void test('validator: a healthy simulated node passes; no IOMMU and missing vfio-dev fail with fixes', () => {
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] }] });
  const inv = readInventory(sim.port, { kernelRelease: sim.kernelRelease });
  const r = validateNode({ inventory: inv, plugins: [{ resourceName: 'nvidia.com/L40S-12Q', registered: true, devices: 2, healthy: 2 }], allocatable: { 'nvidia.com/L40S-12Q': '2' } });
  assert.ok(r.passed, JSON.stringify(r.checks));
  const bad = validateNode({
    inventory: { ...inv, node: { ...inv.node, iommuEnabled: false, modules: [] }, gpus: inv.gpus.map((g) => ({ ...g, vfs: g.vfs.map((v) => ({ ...v, vfioDev: null })) })) },
    plugins: [{ resourceName: 'nvidia.com/L40S-12Q', registered: false, devices: 2, healthy: 2 }],
    allocatable: {},
  });
  assert.equal(bad.passed, false);
  const byName = Object.fromEntries(bad.checks.map((c) => [c.check, c]));
  for (const c of ['iommu', 'vfio-modules', 'vf-vfio-dev', 'device-plugins-registered', 'node-allocatable']) {
    assert.equal(byName[c]?.status, 'failed', c);
    assert.ok(byName[c]!.fix.length > 10, `${c} says how to fix it`);
  }
  assert.match(byName.iommu!.fix, /intel_iommu=on/);
  assert.equal(byName['profiles-applied']?.status, 'skipped');
});
