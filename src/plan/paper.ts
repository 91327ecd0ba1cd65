/**
 * Planning without a node, for `vmgpu validate-config`: what the planner would
 * refuse on every node, found by planning each entry on a fresh card ("on
 * paper") of each board it can meet, built from the board facts. The same
 * rules as on a node (plan.ts, requests.ts), so validate-config and plan never
 * disagree; only what depends on the node is left out: how many VFs its cards
 * expose (sriov_totalvfs, read from the node), whether they are already in
 * mixed-size mode, which GPUs it has.
 */
import { boardProfile, boardsForDevice, boardsForProfile, type BoardFacts } from '../model/boards.js';
import type { Gpu, Inventory } from '../inventory/types.js';
import type { ConfigEntry, ConfigFile, DeviceFilter, NamedConfig } from '../spec/config.js';
import { plan } from './plan.js';

/** One thing the planner would refuse on any node with such a card, at its entry. */
export interface PaperError {
  /** `file:line:col: key path`. */
  where: string;
  message: string;
}

export interface PaperResult {
  errors: PaperError[];
  /** What could not be checked without the node, and why. */
  notes: string[];
}

/** Stands for the card in the planner's messages; replaced by the card's model. */
const PAPER_ADDRESS = '0000:00:00.0';
/** More VFs than any card exposes: VF counts are the node's to tell (maxVfs in the facts is often a lower bound). */
const PAPER_VFS = 256;

/** A fresh card of `board` on a vGPU host: no vGPUs, VFs off, equal-size mode unless the entry says. */
function paperGpu(board: BoardFacts, mixedSizes: boolean): Gpu {
  const sriov = board.maxVfs === null ? null : { totalVfs: PAPER_VFS, numVfs: 0, offset: 4, stride: 1, vfs: [] };
  const usable = { usable: true, reason: null };
  return {
    index: 0,
    pci: {
      address: PAPER_ADDRESS, vendorId: '10de', deviceId: board.deviceIds[0]!, subsystemVendorId: '10de', subsystemDeviceId: board.subsystemDeviceIds?.[0] ?? null,
      classCode: '030200', revision: null, name: board.model, driver: 'nvidia', driverOverride: null, iommuGroup: 0, iommuGroupMembers: [PAPER_ADDRESS],
      numaNode: -1, sriov, physfn: null, vfioDev: null, resetMethods: [], modalias: null,
    },
    model: { name: board.model.replace(/^NVIDIA /, ''), profileBoard: board.board, vgpuFramework: board.framework },
    framework: board.framework === 'sriov' ? 'sriov-vgpu' : 'mdev-vgpu',
    unusableReason: null,
    capabilities: { containers: usable, passthrough: usable, vgpu: usable },
    companions: [],
    catalog: [],
    heterogeneousMode: mixedSizes,
    vfs: [],
    mdevParents: board.framework === 'mdev' && !board.mdevOnVfs ? [{ address: PAPER_ADDRESS, types: [], instances: [] }] : [],
    warnings: [],
  };
}

function paperInventory(gpu: Gpu): Inventory {
  return {
    schemaVersion: 1,
    source: 'paper',
    node: { iommuEnabled: true, modules: [], mdevBusPresent: true, nvidiaDriverVersion: null, vgpuHostDriver: true, kernelRelease: null, vfioDrivers: ['vfio-pci'] },
    gpus: [gpu],
    otherFunctions: [],
    warnings: [],
  };
}

/** The planner's errors for `entry` on a fresh card of `board`, in words about the model rather than an address. */
export function errorsOnPaper(file: ConfigFile, entry: ConfigEntry, board: BoardFacts): string[] {
  // A node in mixed-size mode takes mixed sizes without `mixed-sizes`: only the entry's own `false` is certain.
  const gpu = paperGpu(board, entry.mixedSizes ?? true);
  const alone: ConfigEntry = { ...entry, deviceFilter: null, devices: 'all', pciAddresses: null };
  const config: NamedConfig = { name: 'paper', entries: [alone], line: entry.line };
  const p = plan(paperInventory(gpu), file, config, { nodeId: 'paper' });
  return p.errors.map((e) => e.message.replaceAll(` (${PAPER_ADDRESS})`, '').replaceAll(PAPER_ADDRESS, `any ${gpu.model.name}`));
}

/** Whether a device filter can select a card of `board`. */
export function filterFits(f: DeviceFilter, board: BoardFacts): boolean {
  if (f.vendorId !== '10de' || !board.deviceIds.includes(f.deviceId)) return false;
  return f.subsystemDeviceId === undefined || board.subsystemDeviceIds === undefined || board.subsystemDeviceIds.includes(f.subsystemDeviceId);
}

/** The boards an entry can meet: those its device filter names, else those its profiles belong to. */
export function candidateBoards(entry: ConfigEntry): BoardFacts[] {
  if (entry.deviceFilter !== null && entry.deviceFilter.length > 0) {
    return [...new Set(entry.deviceFilter.flatMap((f) => boardsForDevice(f.deviceId).filter((b) => filterFits(f, b))))];
  }
  return [...new Set(entry.vgpuDevices.flatMap((r) => boardsForProfile(r.profile)))];
}

/** Whether a card of `board` offers every profile the entry asks for. */
export function boardTakes(board: BoardFacts, entry: ConfigEntry): boolean {
  return entry.vgpuDevices.every((r) => boardProfile(board, r.profile) !== undefined);
}
