// The KubeVirt merge: never touching foreign entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectAdvertised, mergeManaged } from '../../../../src/serve/kubevirt/sync.js';

void test('kubevirt merge: adds ours, keeps foreign entries, removes only ours, idempotent', () => {
  const nodes = [
    { metadata: { name: 'n1', annotations: { 'vmgpu.io/permitted-host-devices': JSON.stringify({ pciHostDevices: [{ pciVendorSelector: '10de:26b9', resourceName: 'nvidia.com/L40S-1Q', externalResourceProvider: true }], mediatedDevices: [] }) } } },
    { metadata: { name: 'n2', annotations: { 'vmgpu.io/permitted-host-devices': JSON.stringify({ pciHostDevices: [], mediatedDevices: [{ mdevNameSelector: 'GRID T4-1Q', resourceName: 'nvidia.com/GRID_T4-1Q', externalResourceProvider: true }] }) } } },
    { metadata: { name: 'n3', annotations: { 'vmgpu.io/permitted-host-devices': 'not json' } } },
  ];
  const { wanted, problems } = collectAdvertised(nodes);
  assert.equal(problems.length, 1);
  const foreign = { pciVendorSelector: '8086:1234', resourceName: 'intel.com/qat', externalResourceProvider: false };
  const m1 = mergeManaged({ pciHostDevices: [foreign], usb: [{ x: 1 }] } as never, [], wanted);
  assert.deepEqual(m1.permitted.pciHostDevices[0], foreign);
  assert.equal(m1.permitted.pciHostDevices.length, 2);
  assert.equal(m1.permitted.mediatedDevices.length, 1);
  assert.deepEqual((m1.permitted as Record<string, unknown>).usb, [{ x: 1 }], 'other keys are kept');
  assert.equal(m1.added.length, 2);
  // Idempotent.
  const m2 = mergeManaged(m1.permitted, m1.managed, wanted);
  assert.deepEqual(m2.permitted, m1.permitted);
  assert.deepEqual(m2.added, []);
  // A node stops advertising: only our entry goes.
  const m3 = mergeManaged(m2.permitted, m2.managed, collectAdvertised([nodes[0]!]).wanted);
  assert.deepEqual(m3.permitted.mediatedDevices, []);
  assert.deepEqual(m3.permitted.pciHostDevices.map((e) => e.resourceName).sort(), ['intel.com/qat', 'nvidia.com/L40S-1Q']);
  // An entry the user wrote that equals ours is not claimed, so it is never removed.
  const userOwned = { pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-1Q', externalResourceProvider: true };
  const m4 = mergeManaged({ pciHostDevices: [userOwned], mediatedDevices: [] }, [], collectAdvertised([nodes[0]!]).wanted);
  assert.deepEqual(m4.managed, []);
  const m5 = mergeManaged(m4.permitted, m4.managed, { pciHostDevices: [], mediatedDevices: [] });
  assert.deepEqual(m5.permitted.pciHostDevices, [userOwned]);
  // Conflict: the same resource served by virt-handler.
  const m6 = mergeManaged({ pciHostDevices: [{ pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-1Q', externalResourceProvider: false }] }, [], collectAdvertised([nodes[0]!]).wanted);
  assert.match(m6.conflicts[0] ?? '', /externalResourceProvider/);
});
