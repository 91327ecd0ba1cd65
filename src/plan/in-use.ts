/**
 * The set of devices a plan must not touch, from pluggable sources:
 * open VFIO groups and cdevs (a running QEMU), the simulator's held devices,
 * and (in the agent) the kubelet's pod-resources view. The driver's own EBUSY
 * is the last line: the applier turns it into a blocked step.
 */
import type { Inventory } from '../inventory/types.js';
import type { VfioUser } from '../sysfs/vfio-users.js';

export type InUseMap = Map<string, string>;

/** Map open /dev/vfio groups and cdevs to the inventory's devices. */
export function inUseFromVfioUsers(inv: Inventory, users: readonly VfioUser[]): InUseMap {
  const byGroup = new Map<string, string[]>();
  const byCdev = new Map<string, string>();
  const add = (group: number | null, cdev: string | null, id: string) => {
    if (group !== null) byGroup.set(String(group), [...(byGroup.get(String(group)) ?? []), id]);
    if (cdev) byCdev.set(cdev, id);
  };
  for (const g of inv.gpus) {
    add(g.pci.iommuGroup, g.pci.vfioDev, g.pci.address);
    for (const v of g.vfs) add(v.iommuGroup, v.vfioDev, v.address);
    for (const p of g.mdevParents) for (const i of p.instances) add(i.iommuGroup, null, i.uuid);
  }
  const out: InUseMap = new Map();
  for (const u of users) {
    const ids = u.kind === 'group' ? (byGroup.get(u.id) ?? []) : byCdev.has(u.id) ? [byCdev.get(u.id)!] : [];
    for (const id of ids) out.set(id, `process ${u.pid} (${u.command}) has /dev/vfio/${u.kind === 'cdev' ? `devices/${u.id}` : u.id} open`);
  }
  return out;
}

export function mergeInUse(...maps: ReadonlyMap<string, string>[]): InUseMap {
  const out: InUseMap = new Map();
  for (const m of maps) for (const [k, v] of m) if (!out.has(k)) out.set(k, v);
  return out;
}
