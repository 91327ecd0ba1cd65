/**
 * What every command needs: the sysfs port over the right backend (a host, a
 * tree, a capture archive or a persisted simulator), the host tools, the PCI
 * IDs database and the catalog cache, built from the global flags.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CatalogCache } from '../inventory/catalog-cache.js';
import { PciIds, loadFirstPciIds, DEFAULT_PCI_IDS_PATHS } from '../inventory/pciids.js';
import { readInventory, enrichWithHostTools } from '../inventory/read.js';
import type { Inventory } from '../inventory/types.js';
import { loadSimulation, markSimTreeEdited, saveSimulation, SimHostTools, simTreeProblem, SIM_STATE_FILE, type SimulatedNode } from '../simulator/index.js';
import { DiskBackend } from '../sysfs/disk-backend.js';
import { NoHostTools, RealHostTools, type HostTools } from '../sysfs/host-tools.js';
import { SysfsPort } from '../sysfs/port.js';
import { extractCapture, readCaptureMeta } from '../sysfs/capture.js';
import { CliError, EXIT } from './exit-codes.js';
import { archiveReadOnly, isCaptureArchive, type GlobalFlags } from './flags.js';

export { GLOBAL_OPTIONS, type GlobalFlags } from './flags.js';

export const DEFAULT_STATE_DIR = '/var/lib/vmgpu';

export interface Context {
  port: SysfsPort;
  tools: HostTools;
  pciIds: PciIds;
  catalogCache: CatalogCache | undefined;
  kernelRelease: string | null;
  /** Set with --simulate: the node, saved back to its directory by `done()`. */
  sim: SimulatedNode | undefined;
  /** Persist simulator state (no-op otherwise). */
  done(): void;
  /** Read the inventory; `mixedSizeMode: false` skips asking nvidia-smi for each GPU's mixed-size mode. */
  inventory(opts?: { mixedSizeMode?: boolean }): Promise<Inventory>;
}

export function buildContext(flags: GlobalFlags): Context {
  const pciIds = loadPciIds(flags['pci-ids']);
  const stateDir = flags['state-dir'] ?? (process.env.VMGPU_STATE_DIR || undefined);
  const catalogCache = stateDir ? new CatalogCache(stateDir) : defaultCache();
  if (flags.simulate) {
    if (flags['sysfs-root']) throw new CliError('--simulate and --sysfs-root are mutually exclusive: --simulate DIR reads and changes the simulated node in DIR');
    const dir = flags.simulate;
    const sim = loadSimulation(dir);
    const ctx: Context = {
      port: sim.port,
      tools: new SimHostTools(sim),
      pciIds,
      catalogCache,
      kernelRelease: sim.kernelRelease,
      sim,
      done: () => saveSimulation(sim, dir),
      inventory: (opts) => inventoryOf(ctx, opts),
    };
    return ctx;
  }
  const roots = resolveRoots(flags);
  const { simTree } = roots;
  const backend = new DiskBackend(roots.roots, {
    ...(roots.archive ? { readOnly: archiveReadOnly(roots.archive) } : {}),
    // A write through --sysfs-root into a simulator's tree: its next --simulate save rewrites the tree.
    ...(simTree ? { beforeFirstWrite: () => markSimTreeEdited(simTree.dir) } : {}),
  });
  const port = new SysfsPort(backend);
  const ctx: Context = {
    port,
    // Programs run only on a live host: never from an archive or a directory tree someone handed us.
    tools: backend.live ? new RealHostTools({ sriovManage: port.sriovManagePath() }) : new NoHostTools(noToolsReason(roots)),
    pciIds,
    catalogCache,
    kernelRelease: roots.kernelRelease,
    sim: undefined,
    done: () => {},
    inventory: async (opts) => {
      const inv = await inventoryOf(ctx, opts);
      // A simulator's tree saved while we read it may have been half old, half new.
      if (simTree) checkSimTree(simTree);
      return inv;
    },
  };
  return ctx;
}

/** A simulator's directory read through --sysfs-root, and its state file as it was when resolved. */
interface SimTree {
  dir: string;
  state: string;
}

function stateStamp(dir: string): string {
  const st = fs.statSync(path.join(dir, SIM_STATE_FILE), { throwIfNoEntry: false });
  return st ? `${st.ino}/${st.mtimeMs}/${st.size}` : 'none';
}

/** Refuse a simulator tree that is half saved, or was saved while we read it. */
function checkSimTree(t: SimTree): void {
  const problem = simTreeProblem(t.dir) ?? (stateStamp(t.dir) !== t.state ? `the simulated node in ${t.dir} was saved while it was being read; read it again` : null);
  if (problem) throw new CliError(problem, EXIT.NO_SYSFS);
}

function noToolsReason(r: ResolvedRoots): string {
  if (r.archive) return archiveReadOnly(r.archive);
  return `host tools run only on a live host (a mounted sysfs); ${r.roots.sys} is a directory tree, and vmgpu runs no program from one. To try this change, use --simulate on a node from \`vmgpu sim create\``;
}

async function inventoryOf(ctx: Context, enrich?: { mixedSizeMode?: boolean }): Promise<Inventory> {
  const opts = { pciIds: ctx.pciIds, kernelRelease: ctx.kernelRelease, ...(ctx.catalogCache ? { catalogCache: ctx.catalogCache } : {}) };
  const inv = readInventory(ctx.port, opts);
  await enrichWithHostTools(inv, ctx.tools, enrich);
  return inv;
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

/** The default cache lives in the state dir when it is writable, else nowhere (read-only use still works). */
function defaultCache(): CatalogCache | undefined {
  try {
    fs.accessSync(DEFAULT_STATE_DIR, fs.constants.W_OK);
    return new CatalogCache(DEFAULT_STATE_DIR);
  } catch {
    return undefined;
  }
}

interface ResolvedRoots {
  roots: { sys: string; dev: string; host: string };
  kernelRelease: string | null;
  /** The capture archive the tree was extracted from, if it was. */
  archive: string | null;
  /** Set when the root is a simulated node's directory (it holds a state file). */
  simTree: SimTree | null;
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
  let simTree: SimTree | null = null;
  // A simulated node's directory, given as DIR or as DIR/sys.
  const simDir = base ?? path.dirname(path.resolve(sys));
  if (!archive && fs.existsSync(path.join(simDir, SIM_STATE_FILE))) {
    simTree = { dir: simDir, state: stateStamp(simDir) };
    checkSimTree(simTree);
  }
  let kernelRelease: string | null = null;
  if (base) kernelRelease = readCaptureMeta(base)?.kernelRelease ?? null;
  else if (sys === '/sys') kernelRelease = os.release();
  return { roots: { sys, dev, host }, kernelRelease, archive, simTree };
}
