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
import { NoHostTools, RealHostTools, type RealHostToolsOptions } from '../sysfs/host-tools.js';
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
  /** The capture archive the tree was extracted from: the machine is then read-only. */
  archive?: string | null;
  /** Called once before the first write to a plain tree (a simulator marks its tree edited). */
  beforeFirstWrite?: () => void;
}

/** Why nothing may change a replayed capture. */
function archiveReadOnly(archive: string): string {
  return `${archive} is a capture archive: evidence of a node, never a node to change, and vmgpu runs nothing from it`;
}

function noToolsReason(opts: HostOptions): string {
  if (opts.archive) return archiveReadOnly(opts.archive);
  return `host tools run only on a live host (a mounted sysfs); ${opts.roots.sys} is a directory tree, and vmgpu runs no program from one. To try this change, use --simulate on a node from \`vmgpu sim create\``;
}

export function openHost(opts: HostOptions): Machine {
  const backend = new DiskBackend(opts.roots, {
    ...(opts.archive ? { readOnly: archiveReadOnly(opts.archive) } : {}),
    ...(opts.beforeFirstWrite ? { beforeFirstWrite: opts.beforeFirstWrite } : {}),
  });
  const port = new SysfsPort(backend);
  return machineOf({
    port,
    // Programs run only on a live host: never from an archive or a directory tree someone handed us.
    tools: backend.live ? new RealHostTools({ sriovManage: port.sriovManagePath(), ...nvidiaSmiOptions(opts.driverTools) }) : new NoHostTools(noToolsReason(opts)),
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
