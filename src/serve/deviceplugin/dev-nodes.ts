/**
 * The device nodes a VM's container gets for a set of devices: the VFIO
 * container, each IOMMU group, each VFIO cdev, and /dev/iommu with iommufd.
 * One list for both users: Allocate hands out exactly these paths, and the
 * health check requires exactly these to exist, so a device whose node is
 * gone is Unhealthy and never allocated.
 */
import type { SysfsPort } from '../../sysfs/port.js';
import type { DeviceEntry } from './resources.js';

export type DevNode = { kind: 'container' } | { kind: 'group'; group: number } | { kind: 'cdev'; name: string } | { kind: 'iommufd' };

export function devNodePath(n: DevNode): string {
  switch (n.kind) {
    case 'container':
      return '/dev/vfio/vfio';
    case 'group':
      return `/dev/vfio/${n.group}`;
    case 'cdev':
      return `/dev/vfio/devices/${n.name}`;
    case 'iommufd':
      return '/dev/iommu';
  }
}

/** Whether the node exists on the host now, read through the port. */
export function devNodeExists(port: SysfsPort, n: DevNode): boolean {
  switch (n.kind) {
    case 'container':
      return port.vfioContainerNodeExists();
    case 'group':
      return port.vfioGroupNodeExists(n.group);
    case 'cdev':
      return port.vfioCdevNodeExists(n.name);
    case 'iommufd':
      return port.iommufdNodeExists();
  }
}

/** The nodes `devices` need, deduplicated, in a stable order (container, then per device its group and cdev, then iommufd). */
export function devNodesFor(devices: readonly DeviceEntry[], iommufd: boolean): DevNode[] {
  const out: DevNode[] = [{ kind: 'container' }];
  const seen = new Set(out.map(devNodePath));
  const push = (n: DevNode) => {
    const p = devNodePath(n);
    if (seen.has(p)) return;
    seen.add(p);
    out.push(n);
  };
  for (const d of devices) {
    if (d.iommuGroup !== null) push({ kind: 'group', group: d.iommuGroup });
    if (d.vfioDev !== null) push({ kind: 'cdev', name: d.vfioDev });
  }
  if (iommufd) push({ kind: 'iommufd' });
  return out;
}
