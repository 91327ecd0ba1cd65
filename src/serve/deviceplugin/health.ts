/**
 * The cheap per-device health check, run every few hundred milliseconds and
 * at each Allocate. It reads only a handful of files per device through the
 * sysfs port:
 *   SR-IOV VF:   GPU present, VF present, nvidia/current_vgpu_type
 *   mdev:        GPU present, parent present, /sys/bus/mdev/devices/<uuid>
 *   passthrough: GPU present, driver link
 * and, for every kind, each device node Allocate would hand out for it
 * (dev-nodes.ts: /dev/vfio/vfio, /dev/vfio/<group>, /dev/vfio/devices/vfioN,
 * /dev/iommu with iommufd).
 */
import type { SysfsPort } from '../../sysfs/port.js';
import { parseMdevUuid } from '../../sysfs/names.js';
import { checkPciAddress } from '../../model/pci.js';
import { devNodeExists, devNodePath, devNodesFor } from './dev-nodes.js';
import type { DeviceEntry } from './resources.js';

/** Returns null when healthy, else why not. Never throws. */
export type DeviceCheck = () => string | null;

export function compileCheck(port: SysfsPort, d: DeviceEntry, opts: { iommufd?: boolean } = {}): DeviceCheck {
  const gpu = checkPciAddress(d.gpu);
  const steps: DeviceCheck[] = [];
  steps.push(() => (port.pciDeviceExists(gpu) ? null : `GPU ${d.gpu} is not on the PCI bus`));

  if (d.source === 'sriov-vgpu' && d.address) {
    const vf = checkPciAddress(d.address);
    const want = d.expect.vgpuTypeId ?? 0;
    steps.push(() => (port.pciDeviceExists(vf) ? null : `VF ${d.address} is gone`));
    steps.push(() => {
      const text = port.readNvidiaAttr(vf, 'current_vgpu_type');
      if (text === undefined) return `VF ${d.address} has no nvidia/current_vgpu_type (vGPU manager not loaded?)`;
      const got = Number(text.trim());
      if (got === want) return null;
      return got === 0 ? `VF ${d.address} lost its vGPU type ${want}` : `VF ${d.address} now has vGPU type ${text.trim()}, not ${want}`;
    });
  } else if (d.source === 'mdev-vgpu' && d.uuid) {
    const uuid = parseMdevUuid(d.uuid);
    if (d.parent && d.parent !== d.gpu) {
      const parent = checkPciAddress(d.parent);
      steps.push(() => (port.pciDeviceExists(parent) ? null : `mdev parent ${d.parent} is gone`));
    }
    steps.push(() => (port.mdevExists(uuid) ? null : `mdev ${d.uuid} is gone`));
  } else if (d.source === 'passthrough' && d.address) {
    const addr = checkPciAddress(d.address);
    const driver = d.expect.driver;
    if (driver) {
      steps.push(() => {
        const got = port.readPciLink(addr, 'driver');
        return got === driver ? null : `GPU ${d.address} is bound to ${got ?? 'no driver'}, not ${driver}`;
      });
    }
  }
  for (const n of devNodesFor([d], opts.iommufd ?? false)) {
    steps.push(() => (devNodeExists(port, n) ? null : `${devNodePath(n)} is missing`));
  }
  return () => {
    try {
      for (const s of steps) {
        const why = s();
        if (why !== null) return why;
      }
      return null;
    } catch (err) {
      return `health check of ${d.id} failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  };
}
