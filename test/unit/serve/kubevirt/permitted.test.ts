import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PciIds } from '../../../../src/inventory/pciids.js';
import { mergePermittedHostDevices, permittedHostDevices, permittedHostDevicesWithProblems } from '../../../../src/serve/kubevirt/permitted.js';
import { mixedNode, PCI_IDS_TEXT } from '../fixtures.js';

const pciIds = PciIds.fromText(PCI_IDS_TEXT);

test('permittedHostDevices: VFs and passthrough under pciHostDevices, mdev types under mediatedDevices', () => {
  assert.deepEqual(permittedHostDevices(mixedNode(), { pciIds }), {
    pciHostDevices: [
      { pciVendorSelector: '10DE:2236', resourceName: 'nvidia.com/GA102GL_A10', externalResourceProvider: true },
      // two profiles of one card share a selector: one entry per resource name
      { pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-12Q', externalResourceProvider: true },
      { pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-24Q', externalResourceProvider: true },
    ],
    mediatedDevices: [
      { mdevNameSelector: 'GRID T4-1Q', resourceName: 'nvidia.com/GRID_T4-1Q', externalResourceProvider: true },
      { mdevNameSelector: 'GRID T4-2Q', resourceName: 'nvidia.com/GRID_T4-2Q', externalResourceProvider: true },
    ],
  });
});

test('permittedHostDevices honours overrides and rejects bad ones', () => {
  const out = permittedHostDevices(mixedNode(), { pciIds, resourceNames: { 'GRID T4-1Q': 'example.com/t4-small' } });
  assert.deepEqual(out.mediatedDevices[0], { mdevNameSelector: 'GRID T4-1Q', resourceName: 'example.com/t4-small', externalResourceProvider: true });
  assert.throws(() => permittedHostDevices(mixedNode(), { pciIds, resourceNames: { x: 'no-slash' } }), /resourceNames\["x"\]/);
});

test('an empty node gives empty lists and no problems', () => {
  const inv = mixedNode();
  inv.gpus = [];
  assert.deepEqual(permittedHostDevicesWithProblems(inv, { pciIds }), { pciHostDevices: [], mediatedDevices: [], problems: [] });
});

test('merge keeps the user entries, adds ours once, and reports names virt-handler would also serve', () => {
  const ours = permittedHostDevices(mixedNode(), { pciIds });
  const existing = {
    pciHostDevices: [
      { pciVendorSelector: '8086:1572', resourceName: 'intel.com/nic', externalResourceProvider: false },
      { pciVendorSelector: '10de:26b9', resourceName: 'nvidia.com/L40S-24Q', externalResourceProvider: false },
    ],
    mediatedDevices: [{ mdevNameSelector: 'GRID T4-1Q', resourceName: 'nvidia.com/GRID_T4-1Q', externalResourceProvider: true }],
  };
  const { merged, added, conflicts } = mergePermittedHostDevices(existing, ours);
  assert.deepEqual(merged.pciHostDevices.slice(0, 2), existing.pciHostDevices);
  assert.equal(merged.pciHostDevices.length, 4);
  assert.equal(merged.mediatedDevices.length, 2);
  assert.equal(added, 3);
  assert.deepEqual(conflicts.map((c) => c.resourceName), ['nvidia.com/L40S-24Q']);
  assert.match(conflicts[0]!.message, /externalResourceProvider: true/);
  // merging again adds nothing
  assert.equal(mergePermittedHostDevices(merged, ours).added, 0);
});
