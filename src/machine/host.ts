/**
 * Opening the machine vmgpu runs on, or a tree that stands for one: the
 * kernel's sysfs, a directory tree (a materialised simulator, an extracted
 * capture) with its dev/ and host/ beside it.
 */
import * as fs from 'node:fs';
import { CatalogCache } from '../inventory/catalog-cache.js';
import type { PciIds } from '../inventory/pciids.js';
import { DiskBackend, type DiskRoots } from '../sysfs/disk-backend.js';
import type { DriverTools } from '../sysfs/driver-root.js';
import { RealHostTools, type RealHostToolsOptions } from '../sysfs/host-tools.js';
import { SysfsPort } from '../sysfs/port.js';
import { seesHostProcesses } from '../sysfs/processes.js';
import { openVfioDevices } from '../sysfs/vfio-users.js';
import { nodeLockPath } from './lock.js';
import { machineOf, type Machine } from './machine.js';

export const DEFAULT_STATE_DIR = '/var/lib/vmgpu';

export interface HostOptions {
  roots: DiskRoots;
  pciIds: PciIds;
  kernelRelease: string | null;
  /** Where the catalog cache lives; undefined: the default state dir when it is writable, else none. */
  stateDir?: string | undefined;
  /**
   * The host driver's nvidia-smi and libnvidia-ml under a mounted driver root
   * (driver-root.ts); undefined: nvidia-smi on PATH, as on a host.
   */
  driverTools?: DriverTools | undefined;
}

export function openHost(opts: HostOptions): Machine {
  const backend = new DiskBackend(opts.roots);
  const port = new SysfsPort(backend);
  return machineOf({
    port,
    tools: new RealHostTools({ sriovManage: port.sriovManagePath(), ...nvidiaSmiOptions(opts.driverTools) }),
    pciIds: opts.pciIds,
    kernelRelease: opts.kernelRelease,
    catalogCache: opts.stateDir ? new CatalogCache(opts.stateDir) : defaultCatalogCache(),
    // Only a live kernel has processes holding its devices; a tree has none to scan.
    vfioUsers: () => (!backend.live ? [] : seesHostProcesses() ? openVfioDevices() : null),
    commit: () => {},
    lockPath: nodeLockPath({ sysRoot: opts.roots.sys, stateDir: opts.stateDir ?? DEFAULT_STATE_DIR }),
  });
}

function nvidiaSmiOptions(t: DriverTools | undefined): Partial<RealHostToolsOptions> {
  if (t === undefined) return {};
  return t.found ? { nvidiaSmi: t.nvidiaSmi, libraryPath: t.libraryPath } : { nvidiaSmi: null, nvidiaSmiMissing: t.why };
}

/** The default cache lives in the state dir when it is writable, else nowhere (read-only use still works). */
function defaultCatalogCache(): CatalogCache | undefined {
  try {
    fs.accessSync(DEFAULT_STATE_DIR, fs.constants.W_OK);
    return new CatalogCache(DEFAULT_STATE_DIR);
  } catch {
    return undefined;
  }
}
