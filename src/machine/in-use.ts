/**
 * The set of devices a plan must not touch. Every source is reduced to one
 * shape first — processes with VFIO files open (`VfioUser`) — and mapped to
 * the inventory's devices here, so a real host and the simulator go through
 * the same code. The agent adds the kubelet's pod-resources view with
 * `mergeInUse`. The driver's own EBUSY is the last line: the applier turns it
 * into a blocked step.
 */
import type { Inventory } from '../inventory/types.js';
import type { InUse } from '../plan/types.js';
import type { VfioUser } from '../sysfs/vfio-users.js';

/** Device (PCI address or mdev UUID) -> who holds it. */
export type InUseMap = Map<string, string>;

/** Map open /dev/vfio groups and cdevs to the inventory's devices. */
export function inUseFromVfioUsers(inv: Inventory, users: readonly VfioUser[]): InUseMap {
  const byGroup = new Map<string, string[]>();
  const byCdev = new Map<string, string[]>();
  const add = (group: number | null, cdev: string | null, ...ids: string[]) => {
    if (group !== null) byGroup.set(String(group), [...(byGroup.get(String(group)) ?? []), ...ids]);
    if (cdev) byCdev.set(cdev, ids);
  };
  for (const g of inv.gpus) {
    // The group is the unit a VM holds: the GPU's companions (its audio function) are held with it.
    add(g.pci.iommuGroup, g.pci.vfioDev, g.pci.address, ...g.companions);
    for (const v of g.vfs) add(v.iommuGroup, v.vfioDev, v.address);
    for (const p of g.mdevParents) for (const i of p.instances) add(i.iommuGroup, null, i.uuid);
  }
  const out: InUseMap = new Map();
  for (const u of users) {
    const ids = (u.kind === 'group' ? byGroup : byCdev).get(u.id) ?? [];
    for (const id of ids) out.set(id, `process ${u.pid} (${u.command}) has /dev/vfio/${u.kind === 'cdev' ? `devices/${u.id}` : u.id} open`);
  }
  return out;
}

/** The union of in-use sources; the first source to name a device gives its reason. */
export function mergeInUse(...maps: InUse[]): InUseMap {
  const out: InUseMap = new Map();
  for (const m of maps) for (const [k, v] of m) if (!out.has(k)) out.set(k, v);
  return out;
}
