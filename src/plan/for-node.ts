/**
 * Planning on a live node: read the inventory, gather the in-use set from its
 * sources, choose each GPU's VFIO driver from modules.alias, and call the pure
 * planner. Shared by the CLI (plan/apply/assert) and the agent.
 */
import type { Gpu, Inventory } from '../inventory/types.js';
import type { ConfigFile } from '../spec/config.js';
import { selectConfig } from '../spec/load.js';
import type { SysfsPort } from '../sysfs/port.js';
import { openVfioDevices } from '../sysfs/vfio-users.js';
import { inUseFromVfioUsers, mergeInUse, type InUseMap } from './in-use.js';
import { plan as makePlan } from './plan.js';
import type { Plan } from './types.js';
import { driverNameForModule, vfioVariantFor } from './vfio-variant.js';

/** What planning needs from a node: its port, its inventory and, on a simulated node, the devices VMs hold. */
export interface NodeAccess {
  port: SysfsPort;
  inventory(): Promise<Inventory>;
  sim?: { heldDevices(): string[] } | undefined;
}

/** The in-use set: devices held by the simulator, or VFIO devices open on a live host. */
export function inUseOf(node: NodeAccess, inv: Inventory): InUseMap {
  if (node.sim) return new Map(node.sim.heldDevices().map((d) => [d, 'held by a VM (simulator)']));
  const live = (node.port.backend as { live?: boolean }).live === true;
  return live ? inUseFromVfioUsers(inv, openVfioDevices()) : new Map();
}

/** A GPU's passthrough driver: a vendor VFIO variant matching its modalias, else vfio-pci. */
export function vfioDriverChooser(node: NodeAccess, inv: Inventory): (g: Gpu) => string {
  const alias = inv.node.kernelRelease ? node.port.readModulesAlias(inv.node.kernelRelease) : undefined;
  const drivers = node.port.listDrivers();
  return (g) => {
    const mod = vfioVariantFor(g.pci.modalias, alias);
    return mod ? driverNameForModule(mod, drivers) : 'vfio-pci';
  };
}

/** Plan config `name` of `file` on the node. Throws ConfigError when the name does not exist. */
export async function planFor(node: NodeAccess, file: ConfigFile, name: string, nodeId: string, extraInUse?: ReadonlyMap<string, string>): Promise<{ inv: Inventory; plan: Plan }> {
  const entries = selectConfig(file, name);
  const inv = await node.inventory();
  const inUse = mergeInUse(inUseOf(node, inv), extraInUse ?? new Map());
  const plan = makePlan(inv, file, { name, entries, line: 0 }, { nodeId, inUse, vfioDriverFor: vfioDriverChooser(node, inv) });
  return { inv, plan };
}
