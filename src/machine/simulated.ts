/**
 * Opening a simulated node as a machine: the simulator's in-memory sysfs and
 * host tools, its simulated VMs as processes with VFIO files open (the same
 * in-use path a real host takes), and `commit()` to save it back to its
 * directory when one is given.
 */
import { CatalogCache } from '../inventory/catalog-cache.js';
import { DEFAULT_PCI_IDS_PATHS, loadFirstPciIds, type PciIds } from '../inventory/pciids.js';
import { loadSimulation, saveSimulation, SimHostTools, type SimulatedNode } from '../simulator/index.js';
import { seesHostProcesses } from '../sysfs/processes.js';
import { nodeLockPath } from './lock.js';
import { machineOf, type Machine } from './machine.js';

export interface SimulatedOptions {
  /** Save the node back to this directory on commit(). */
  saveTo?: string;
  pciIds?: PciIds;
  /** Catalog cache directory; none by default (a simulated node names every type it shows). */
  stateDir?: string | undefined;
}

export function openSimulated(sim: SimulatedNode, opts: SimulatedOptions = {}): Machine {
  return machineOf({
    port: sim.port,
    tools: new SimHostTools(sim),
    pciIds: opts.pciIds ?? loadFirstPciIds(DEFAULT_PCI_IDS_PATHS),
    kernelRelease: sim.kernelRelease,
    catalogCache: opts.stateDir ? new CatalogCache(opts.stateDir) : undefined,
    // The simulated VMs run on the host: a process without the host's PID namespace cannot see them.
    vfioUsers: () => (seesHostProcesses() ? sim.vfioUsers() : null),
    commit: () => {
      if (opts.saveTo) saveSimulation(sim, opts.saveTo);
    },
    lockPath: opts.saveTo ? nodeLockPath({ simulateDir: opts.saveTo }) : null,
  });
}

/** A simulated node persisted by `vmgpu sim create` in DIR, saved back there on commit(). */
export function openSimulatedDir(dir: string, opts: Omit<SimulatedOptions, 'saveTo'> = {}): Machine {
  return openSimulated(loadSimulation(dir), { ...opts, saveTo: dir });
}
