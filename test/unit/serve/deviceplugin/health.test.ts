import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readInventory } from '../../../../src/inventory/read.js';
import { PciIds } from '../../../../src/inventory/pciids.js';
import { createSimulatedNode } from '../../../../src/simulator/index.js';
import { parseMdevUuid } from '../../../../src/sysfs/names.js';
import { checkPciAddress } from '../../../../src/model/pci.js';
import { compileCheck } from '../../../../src/serve/deviceplugin/health.js';
import { passthroughNamer } from '../../../../src/serve/deviceplugin/passthrough-name.js';
import { collectResources, type DeviceEntry } from '../../../../src/serve/deviceplugin/resources.js';
import { PCI_IDS_TEXT } from '../fixtures.js';

function setup() {
  const node = createSimulatedNode({
    gpus: [
      { model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] },
      { model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-1Q'] },
      { model: 'A10', mode: 'passthrough' },
    ],
  });
  const inv = readInventory(node.port);
  const { resources } = collectResources(inv, { passthroughName: passthroughNamer(PciIds.fromText(PCI_IDS_TEXT)) });
  const pick = (source: DeviceEntry['source']) => resources.find((r) => r.source === source)!.devices[0]!;
  return { node, vf: pick('sriov-vgpu'), mdev: pick('mdev-vgpu'), gpu: pick('passthrough') };
}

test('the simulated node yields one device of each kind', () => {
  const { vf, mdev, gpu } = setup();
  assert.ok(vf.address && vf.iommuGroup !== null && vf.expect.vgpuTypeId, 'a VF with a group and a type');
  assert.ok(mdev.uuid && mdev.iommuGroup !== null, 'an mdev with a group');
  assert.ok(gpu.address && gpu.expect.driver === 'vfio-pci', 'a GPU on vfio-pci');
});

test('VF: unhealthy when it loses its type, its /dev/vfio node or its GPU; healthy when they come back', () => {
  const { node, vf } = setup();
  const check = compileCheck(node.port, vf);
  assert.equal(check(), null);
  const addr = checkPciAddress(vf.address!);
  node.port.writeCurrentVgpuType(addr, 0);
  assert.match(check() ?? '', new RegExp(`VF ${vf.address} lost its vGPU type ${vf.expect.vgpuTypeId}`));
  node.port.writeCurrentVgpuType(addr, vf.expect.vgpuTypeId!);
  assert.equal(check(), null);
  node.removeDevNode(vf.iommuGroup!);
  assert.equal(check(), `/dev/vfio/${vf.iommuGroup} is missing`);
  node.restoreDevNode(vf.iommuGroup!);
  assert.equal(check(), null);
  node.removeDevice(vf.gpu);
  assert.equal(check(), `GPU ${vf.gpu} is not on the PCI bus`);
  node.restoreDevice(vf.gpu);
  assert.equal(check(), null);
});

test('mdev: unhealthy when the instance is removed', () => {
  const { node, mdev } = setup();
  const check = compileCheck(node.port, mdev);
  assert.equal(check(), null);
  node.port.removeMdev(parseMdevUuid(mdev.uuid!));
  assert.equal(check(), `mdev ${mdev.uuid} is gone`);
  node.removeDevice(mdev.gpu);
  assert.equal(check(), `GPU ${mdev.gpu} is not on the PCI bus`);
});

test('passthrough: unhealthy when unbound from vfio-pci', () => {
  const { node, gpu } = setup();
  const check = compileCheck(node.port, gpu);
  assert.equal(check(), null);
  node.port.unbindDriver(checkPciAddress(gpu.address!));
  assert.equal(check(), `GPU ${gpu.address} is bound to no driver, not vfio-pci`);
});

test('a check never throws: backend errors become a reason', () => {
  const { node, vf } = setup();
  const broken = { ...node.port, pciDeviceExists: () => { throw new Error('EIO'); } } as unknown as typeof node.port;
  assert.match(compileCheck(broken, vf)() ?? '', /health check of .* failed: EIO/);
});

test('health covers every host path Allocate hands out (defect 6): the VFIO cdev, the VFIO container and, with iommufd, /dev/iommu', () => {
  const { node, vf, gpu } = setup();
  assert.ok(vf.vfioDev, 'the VF has a VFIO cdev');
  const check = compileCheck(node.port, vf, { iommufd: true });
  assert.equal(check(), null);
  node.removeDevNode(`vfio/devices/${vf.vfioDev}`);
  assert.equal(check(), `/dev/vfio/devices/${vf.vfioDev} is missing`);
  node.restoreDevNode(`vfio/devices/${vf.vfioDev}`);
  assert.equal(check(), null);
  node.removeDevNode('vfio/vfio');
  assert.equal(compileCheck(node.port, gpu)(), '/dev/vfio/vfio is missing');
  node.restoreDevNode('vfio/vfio');
  node.removeDevNode('iommu');
  assert.equal(check(), '/dev/iommu is missing');
  assert.equal(compileCheck(node.port, vf, { iommufd: false })(), null, 'without iommufd, /dev/iommu is not handed out and not checked');
});
