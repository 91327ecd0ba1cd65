/**
 * From the global flags to the machine a command works on: the host's sysfs,
 * a directory tree or capture archive (`--sysfs-root`), or a persisted
 * simulated node (`--simulate DIR`). Everything else is src/machine's job.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PciIds, loadFirstPciIds, DEFAULT_PCI_IDS_PATHS } from '../inventory/pciids.js';
import { DEFAULT_STATE_DIR, openHost } from '../machine/host.js';
import { acquireNodeLock, nodeLockPath, type NodeLock } from '../machine/lock.js';
import type { Machine } from '../machine/machine.js';
import { openSimulatedDir } from '../machine/simulated.js';
import { beforeWritingSimulatorTree, guardedBySimulatorTree, simulatorTreeAt, type SimulatorTree } from '../machine/simulator-tree.js';
import { extractCapture, readCaptureMeta } from '../sysfs/capture.js';
import { driverToolsAt, type DriverTools } from '../sysfs/driver-root.js';
import { CliError, EXIT } from './exit-codes.js';
import { isCaptureArchive, type GlobalFlags } from './flags.js';

export { DEFAULT_STATE_DIR } from '../machine/host.js';

export { GLOBAL_OPTIONS, type GlobalFlags } from './flags.js';

/**
 * Take the writer lock of the node the flags name, before anything is read
 * from it, so plan and apply see no other writer's half-done work.
 */
export async function lockNode(flags: GlobalFlags, command: string, waitMs: number): Promise<NodeLock> {
  const where = flags.simulate
    ? { simulateDir: flags.simulate }
    : { sysRoot: resolveRoots(flags).roots.sys, stateDir: flags['state-dir'] ?? (process.env.VMGPU_STATE_DIR || DEFAULT_STATE_DIR) };
  return acquireNodeLock(nodeLockPath(where), {
    command,
    waitMs,
    onWait: (h) => process.stderr.write(`waiting for the node lock: ${h ? `${h.command} (PID ${h.pid})` : 'another vmgpu process'} is changing this node…\n`),
  });
}

/** `found`: the driver tools the caller looked up already (the agent logs what it found). */
export function openMachine(flags: GlobalFlags, found?: { driverTools: DriverTools | undefined }): Machine {
  const pciIds = loadPciIds(flags['pci-ids']);
  const stateDir = flags['state-dir'] ?? (process.env.VMGPU_STATE_DIR || undefined);
  if (flags.simulate) {
    if (flags['sysfs-root']) throw new CliError('--simulate and --sysfs-root are mutually exclusive: --simulate DIR reads and changes the simulated node in DIR');
    return openSimulatedDir(flags.simulate, { pciIds, stateDir });
  }
  const { roots, kernelRelease, archive, simTree } = resolveRoots(flags);
  const machine = openHost({
    roots,
    pciIds,
    kernelRelease,
    stateDir,
    driverTools: found ? found.driverTools : driverTools(flags),
    archive,
    // A write through --sysfs-root into a simulator's tree: its next --simulate save rewrites the tree.
    ...(simTree ? { beforeFirstWrite: beforeWritingSimulatorTree(simTree) } : {}),
  });
  return simTree ? guardedBySimulatorTree(machine, simTree) : machine;
}

/**
 * `--driver-root DIR` (env VMGPU_DRIVER_ROOT): the host driver's root as this
 * process sees it (the chart mounts it at /host/driver; on a GPU Operator
 * node /run/nvidia/driver). Without it, nvidia-smi on PATH.
 */
export function driverTools(flags: GlobalFlags): DriverTools | undefined {
  const root = flags['driver-root'] ?? (process.env.VMGPU_DRIVER_ROOT || undefined);
  return root === undefined ? undefined : driverToolsAt(root, os.tmpdir());
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
  /** The capture archive the tree was extracted from, if it was. */
  archive: string | null;
  /** Set when the root is a simulated node's directory (it holds a state file). */
  simTree: SimulatorTree | null;
}

/**
 * `--sysfs-root` may be a sysfs mount (`/sys`), a directory holding `sys/`
 * (a simulator tree or an extracted capture, whose `dev/` and `host/` are used
 * as defaults), or a capture archive (`.tar.gz`), extracted to a temporary dir.
 */
export function resolveRoots(flags: GlobalFlags): ResolvedRoots {
  let sys = flags['sysfs-root'] ?? '/sys';
  let base: string | null = null;
  const archive = isCaptureArchive(flags['sysfs-root']) ? flags['sysfs-root'] : null;
  if (archive) {
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
  // A simulated node's directory, given as DIR or as DIR/sys.
  const simTree = archive ? null : simulatorTreeAt(base ?? path.dirname(path.resolve(sys)));
  let kernelRelease: string | null = null;
  if (base) kernelRelease = readCaptureMeta(base)?.kernelRelease ?? null;
  else if (sys === '/sys') kernelRelease = os.release();
  return { roots: { sys, dev, host }, kernelRelease, archive, simTree };
}
