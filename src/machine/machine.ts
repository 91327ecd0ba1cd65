/**
 * The machine: one handle on a GPU node, real or simulated, with everything
 * the commands, the agent and the tests need from it — the sysfs port, NVIDIA's
 * host tools, the PCI IDs database, the inventory, the in-use set, the VFIO
 * driver choice, and `commit()` to persist a simulated node. It is opened in
 * one place (host.ts or simulated.ts); nothing else wires these parts.
 */
import { enrichWithHostTools, readInventory } from '../inventory/read.js';
import type { CatalogCache } from '../inventory/catalog-cache.js';
import type { PciIds } from '../inventory/pciids.js';
import type { Gpu, Inventory, Warning } from '../inventory/types.js';
import type { HostTools } from '../sysfs/host-tools.js';
import type { SysfsPort } from '../sysfs/port.js';
import type { VfioUser } from '../sysfs/vfio-users.js';
import { inUseFromVfioUsers, type InUseMap } from './in-use.js';
import { acquireNodeLock, type LockOptions, type NodeLock } from './lock.js';
import { vfioDriverChooser } from './vfio-driver.js';

export interface InventoryRequest {
  /** false skips asking nvidia-smi for each GPU's mixed-size mode (the device plugin does not need it). */
  mixedSizeMode?: boolean;
  /** Ask nvidia-smi for every type each GPU supports, not only for names missing (import checks IDs against it). */
  fullCatalog?: boolean;
}

export interface Machine {
  readonly port: SysfsPort;
  readonly tools: HostTools;
  readonly pciIds: PciIds;
  readonly kernelRelease: string | null;
  /** Read the node; type names the free VFs show are remembered in the catalog cache. */
  inventory(req?: InventoryRequest): Promise<Inventory>;
  /** Devices VMs hold right now, from the processes that have VFIO files open. */
  inUse(inv: Inventory): InUseMap;
  /**
   * Why inUse() cannot see every VM (this process does not see the host's
   * processes, e.g. a container without the host PID namespace), or null when
   * it can. Planning refuses to change a GPU while this is set.
   */
  inUseBlindSpot(): string | null;
  /** Each GPU's passthrough driver: a vendor VFIO variant from modules.alias, else vfio-pci. */
  vfioDriverFor(inv: Inventory): (g: Gpu) => string;
  /** Persist what changed (a simulated node's directory); nothing on a host. */
  commit(): void;
  /** Take the node's writer lock (one writer per node at a time); see lock.ts. */
  lock(opts: LockOptions): Promise<NodeLock>;
}

/** What host.ts and simulated.ts put together. */
export interface MachineParts {
  port: SysfsPort;
  tools: HostTools;
  pciIds: PciIds;
  kernelRelease: string | null;
  catalogCache: CatalogCache | undefined;
  /** Processes with /dev/vfio files open (a running QEMU holds its vGPU's group or cdev); null: this process cannot see the host's processes. */
  vfioUsers(): VfioUser[] | null;
  commit(): void;
  /** Where the writer lock lives; null: an in-memory node only this process sees (no lock needed). */
  lockPath: string | null;
}

const BLIND =
  "this process does not see the host's processes (a container without the host PID namespace), so it cannot tell which VFIO devices running VMs hold open";

export function machineOf(parts: MachineParts): Machine {
  return {
    port: parts.port,
    tools: parts.tools,
    pciIds: parts.pciIds,
    kernelRelease: parts.kernelRelease,
    async inventory(req) {
      const inv = readInventory(parts.port, { pciIds: parts.pciIds, kernelRelease: parts.kernelRelease, ...(parts.catalogCache ? { catalogCache: parts.catalogCache } : {}) });
      await enrichWithHostTools(inv, parts.tools, req);
      if (parts.catalogCache) rememberCatalog(inv, parts.catalogCache);
      return inv;
    },
    inUse: (inv) => inUseFromVfioUsers(inv, parts.vfioUsers() ?? []),
    inUseBlindSpot: () => (parts.vfioUsers() === null ? BLIND : null),
    vfioDriverFor: (inv) => vfioDriverChooser(parts.port, inv),
    commit: () => parts.commit(),
    lock: async (opts) => (parts.lockPath === null ? { release: () => {} } : acquireNodeLock(parts.lockPath, opts)),
  };
}

/**
 * Record the names free VFs list now: a full card lists nothing, so these are
 * what names its vGPUs later. A cache that cannot be written is a warning on
 * the GPU, never a failed read.
 */
function rememberCatalog(inv: Inventory, cache: CatalogCache): void {
  const version = inv.node.nvidiaDriverVersion;
  if (!version) return;
  for (const g of inv.gpus) {
    const seen = g.catalog.filter((t) => t.source === 'creatable').map((t) => ({ id: t.id, name: t.name }));
    if (seen.length === 0) continue;
    try {
      cache.merge(g.pci.deviceId, version, seen);
    } catch (err) {
      const w: Warning = { code: 'catalog-cache', message: `could not update the catalog cache: ${(err as Error).message}` };
      g.warnings.push(w);
    }
  }
}
