/**
 * From the global flags to the machine a command works on: the host's sysfs,
 * a directory tree or capture archive (`--sysfs-root`), or a persisted
 * simulated node (`--simulate DIR`). Everything else is src/machine's job.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PciIds, loadFirstPciIds, DEFAULT_PCI_IDS_PATHS } from '../inventory/pciids.js';
import { openHost } from '../machine/host.js';
import type { Machine } from '../machine/machine.js';
import { openSimulatedDir } from '../machine/simulated.js';
import { extractCapture, readCaptureMeta } from '../sysfs/capture.js';
import { CliError, EXIT } from './exit-codes.js';

export { DEFAULT_STATE_DIR } from '../machine/host.js';

export interface GlobalFlags {
  'sysfs-root'?: string;
  'dev-root'?: string;
  'host-root'?: string;
  'pci-ids'?: string;
  'state-dir'?: string;
  simulate?: string;
}

export const GLOBAL_OPTIONS = {
  'sysfs-root': { type: 'string' },
  'dev-root': { type: 'string' },
  'host-root': { type: 'string' },
  'pci-ids': { type: 'string' },
  'state-dir': { type: 'string' },
  simulate: { type: 'string' },
} as const;

export function openMachine(flags: GlobalFlags): Machine {
  const pciIds = loadPciIds(flags['pci-ids']);
  const stateDir = flags['state-dir'] ?? (process.env.VMGPU_STATE_DIR || undefined);
  if (flags.simulate) {
    if (flags['sysfs-root']) throw new CliError('--simulate and --sysfs-root are mutually exclusive: --simulate DIR reads and changes the simulated node in DIR');
    return openSimulatedDir(flags.simulate, { pciIds, stateDir });
  }
  const { roots, kernelRelease } = resolveRoots(flags);
  return openHost({ roots, pciIds, kernelRelease, stateDir });
}

function loadPciIds(explicit: string | undefined): PciIds {
  if (explicit) {
    try {
      return PciIds.load(explicit);
    } catch (err) {
      throw new CliError(`--pci-ids ${explicit}: ${(err as Error).message}`);
    }
  }
  return loadFirstPciIds(DEFAULT_PCI_IDS_PATHS);
}

interface ResolvedRoots {
  roots: { sys: string; dev: string; host: string };
  kernelRelease: string | null;
}

/**
 * `--sysfs-root` may be a sysfs mount (`/sys`), a directory holding `sys/`
 * (a simulator tree or an extracted capture, whose `dev/` and `host/` are used
 * as defaults), or a capture archive (`.tar.gz`), extracted to a temporary dir.
 */
export function resolveRoots(flags: GlobalFlags): ResolvedRoots {
  let sys = flags['sysfs-root'] ?? '/sys';
  let base: string | null = null;
  if (/\.(tar\.gz|tgz)$/.test(sys)) {
    if (!fs.existsSync(sys)) throw new CliError(`--sysfs-root ${sys}: no such capture archive`, EXIT.NO_SYSFS);
    base = extractCapture(sys);
    sys = path.join(base, 'sys');
  } else if (!fs.existsSync(path.join(sys, 'bus')) && fs.existsSync(path.join(sys, 'sys', 'bus'))) {
    base = sys;
    sys = path.join(sys, 'sys');
  }
  if (!fs.existsSync(sys)) throw new CliError(`--sysfs-root ${sys}: no such directory`, EXIT.NO_SYSFS);
  const dev = flags['dev-root'] ?? (base ? path.join(base, 'dev') : '/dev');
  const host = flags['host-root'] ?? (base ? path.join(base, 'host') : '/');
  let kernelRelease: string | null = null;
  if (base) kernelRelease = readCaptureMeta(base)?.kernelRelease ?? null;
  else if (sys === '/sys') kernelRelease = os.release();
  return { roots: { sys, dev, host }, kernelRelease };
}
