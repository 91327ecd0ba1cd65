/** Passthrough: driver binding the kernel's way, IOMMU groups, and a host without an IOMMU. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DriverName } from '../../../src/sysfs/names.js';
import type { PciAddress } from '../../../src/model/pci.js';
import { node, pfOf, throwsErrno, vfsOf } from './helpers.js';

const vfio = 'vfio-pci' as DriverName;
const nvidia = 'nvidia' as DriverName;

void test('passthrough mode: the GPU is on vfio-pci with driver_override, a VFIO cdev and /dev/vfio/<group>', () => {
  const n = node({ gpus: [{ model: 'L40S', mode: 'passthrough' }] });
  const pf = pfOf(n);
  assert.equal(n.port.readPciLink(pf, 'driver'), 'vfio-pci');
  assert.equal(n.port.readPciAttr(pf, 'driver_override'), 'vfio-pci');
  const group = Number(n.port.readPciLink(pf, 'iommu_group'));
  assert.ok(Number.isInteger(group));
  assert.deepEqual(n.port.listIommuGroupMembers(group), [pf]);
  assert.ok(n.port.vfioGroupNodeExists(group));
  const cdev = n.port.readVfioDev(pf);
  assert.match(cdev ?? '', /^vfio[0-9]+$/);
  assert.ok(n.port.vfioCdevNodeExists(cdev!));
  assert.ok(n.port.vfioContainerNodeExists());
  assert.ok(n.port.iommufdNodeExists());
  assert.equal(n.port.hasNvidiaDir(pf), false);
  assert.deepEqual(vfsOf(n), [], 'no VFs on a passthrough GPU');
  assert.deepEqual(n.port.listModules(['nvidia_vgpu_vfio']), [], 'not a vGPU host');
});

void test('RTX 6000 Ada: the audio function shares the IOMMU group and follows the GPU to vfio-pci', () => {
  const pt = node({ gpus: [{ model: 'RTX6000-Ada', mode: 'passthrough' }] });
  const pf = pfOf(pt);
  const audio = pf.replace(/\.0$/, '.1') as PciAddress;
  const group = Number(pt.port.readPciLink(pf, 'iommu_group'));
  assert.equal(pt.port.readPciLink(audio, 'iommu_group'), String(group));
  assert.deepEqual(pt.port.listIommuGroupMembers(group), [pf, audio]);
  assert.equal(pt.port.readPciLink(audio, 'driver'), 'vfio-pci');
  assert.equal(pt.port.readPciAttr(audio, 'class'), '0x040300');
  assert.equal(pt.port.readPciAttr(audio, 'device'), '0x22ba');
  const host = node({ gpus: [{ model: 'RTX6000-Ada', mode: 'host' }] });
  assert.equal(host.port.readPciLink(audio, 'driver'), 'snd_hda_intel');
  // Models without an audio function have a group of one.
  const l40s = node({ gpus: [{ model: 'L40S', mode: 'host' }] });
  assert.equal(l40s.port.pciDeviceExists(pfOf(l40s).replace(/\.0$/, '.1') as PciAddress), false);
});

void test('host → passthrough: driver_override, unbind, drivers_probe; and back with bind', () => {
  const n = node({ gpus: [{ model: 'L40S', mode: 'host' }] });
  const pf = pfOf(n);
  const group = Number(n.port.readPciLink(pf, 'iommu_group'));
  assert.equal(n.port.readPciLink(pf, 'driver'), 'nvidia');
  assert.equal(n.port.readPciAttr(pf, 'driver_override'), '(null)');
  assert.equal(n.port.vfioGroupNodeExists(group), false, 'no /dev/vfio/<group> while on nvidia');
  // Binding to vfio-pci without driver_override: no ID match.
  throwsErrno(() => n.port.bindDriver(vfio, pf), 'EBUSY', /already bound/);
  n.port.unbindDriver(pf);
  throwsErrno(() => n.port.bindDriver(vfio, pf), 'ENODEV', /driver_override/);
  n.port.writeDriverOverride(pf, vfio);
  throwsErrno(() => n.port.bindDriver(nvidia, pf), 'ENODEV', /driver_override is vfio-pci/);
  n.port.probeDriver(pf);
  assert.equal(n.port.readPciLink(pf, 'driver'), 'vfio-pci');
  assert.ok(n.port.vfioGroupNodeExists(group));
  assert.match(n.port.readVfioDev(pf) ?? '', /^vfio[0-9]+$/);
  n.port.probeDriver(pf); // probing a bound device changes nothing
  assert.equal(n.port.readPciLink(pf, 'driver'), 'vfio-pci');
  // Back to the host driver.
  n.port.unbindDriver(pf);
  n.port.writeDriverOverride(pf, null);
  assert.equal(n.port.readPciAttr(pf, 'driver_override'), '(null)');
  n.port.bindDriver(nvidia, pf);
  assert.equal(n.port.readPciLink(pf, 'driver'), 'nvidia');
  assert.equal(n.port.readVfioDev(pf), undefined);
  // A trailing newline in driver_override is what `echo` writes: accepted.
  n.backend.write('sys', `bus/pci/devices/${pf}/driver_override`, 'vfio-pci\n');
  assert.equal(n.port.readPciAttr(pf, 'driver_override'), 'vfio-pci');
  throwsErrno(() => n.backend.write('sys', `bus/pci/devices/${pf}/driver_override`, 'a\nb'), 'EINVAL');
});

void test('binding errors: unknown driver, wrong device, unbinding from the wrong driver, devices held by VMs', () => {
  const n = node({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-4Q'] }] });
  const pf = pfOf(n);
  const vf0 = vfsOf(n)[0]!;
  throwsErrno(() => n.port.bindDriver('nouveau' as DriverName, pf), 'ENOENT');
  throwsErrno(() => n.port.probeDriver('0000:77:00.0' as PciAddress), 'ENODEV');
  throwsErrno(() => n.backend.write('sys', 'bus/pci/drivers/vfio-pci/unbind', pf), 'ENODEV', /not bound to vfio-pci/);
  n.hold(vf0);
  throwsErrno(() => n.port.unbindDriver(pf), 'EBUSY', /in use by VMs/);
  throwsErrno(() => n.port.unbindDriver(vf0), 'EBUSY');
  n.release(vf0);
  // Unbinding the PF from the vGPU manager takes its VFs away.
  n.port.unbindDriver(pf);
  assert.deepEqual(vfsOf(n), []);
  assert.equal(n.port.pciDeviceExists(vf0), false);
  // A passthrough GPU held by a VM cannot be unbound.
  const pt = node({ gpus: [{ model: 'L40S', mode: 'passthrough' }] });
  pt.hold(pfOf(pt));
  throwsErrno(() => pt.port.unbindDriver(pfOf(pt)), 'EBUSY');
});

void test('a vendor VFIO variant driver (nvgrace_gpu_vfio_pci) claims the models it is configured for', () => {
  const n = node({ gpus: [{ model: 'H100', mode: 'passthrough' }], vfioVariantFor: ['H100'] });
  const pf = pfOf(n);
  assert.equal(n.port.readPciLink(pf, 'driver'), 'nvgrace_gpu_vfio_pci');
  assert.ok(n.port.driverRegistered('nvgrace_gpu_vfio_pci'));
  assert.match(n.port.readModulesAlias(n.kernelRelease) ?? '', /alias vfio_pci:v000010DEd00002331sv\*sd\*bc\*sc\*i\* nvgrace_gpu_vfio_pci/);
  const plain = node({ gpus: [{ model: 'H100', mode: 'passthrough' }] });
  assert.equal(plain.port.readPciLink(pfOf(plain), 'driver'), 'vfio-pci');
  assert.equal(plain.port.driverRegistered('nvgrace_gpu_vfio_pci'), false);
});

void test('a host without an IOMMU: no groups, no /dev/vfio, vfio-pci cannot bind', () => {
  const n = node({ gpus: [{ model: 'L40S', mode: 'host' }], iommu: false });
  const pf = pfOf(n);
  assert.equal(n.port.iommuEnabled(), false);
  assert.equal(n.port.readPciLink(pf, 'iommu_group'), undefined);
  assert.equal(n.port.vfioContainerNodeExists(), false);
  assert.equal(n.port.iommufdNodeExists(), false);
  n.port.writeDriverOverride(pf, vfio);
  n.port.unbindDriver(pf);
  throwsErrno(() => n.port.probeDriver(pf), 'EINVAL', /no IOMMU group/);
  assert.equal(n.port.readPciLink(pf, 'driver'), undefined);
  // Asking for passthrough on such a host leaves the GPU without a driver.
  const pt = node({ gpus: [{ model: 'L40S', mode: 'passthrough' }], iommu: false });
  assert.equal(pt.port.readPciLink(pfOf(pt), 'driver'), undefined);
  assert.equal(pt.port.readVfioDev(pfOf(pt)), undefined);
  // SR-IOV vGPU VFs have no IOMMU groups either.
  const v = node({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }], iommu: false });
  assert.equal(v.port.readPciLink(vfsOf(v)[0]!, 'iommu_group'), undefined);
});
