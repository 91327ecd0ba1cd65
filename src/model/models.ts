/**
 * Human names for vGPU-capable NVIDIA data-centre GPUs, for hosts whose PCI IDs
 * database is older than the card. `pciName` is spelled exactly as the
 * upstream pci.ids file (pciutils/pciids) spells the device, so names and
 * passthrough resource names come out the same with or without a current
 * database. Sources: docs/profiles.md.
 */
import { boardForDevice } from './boards.js';
import { toPciId } from './pci.js';

export interface KnownModel {
  /** PCI device ID, vendor 10de, lower-case hex. */
  deviceId: string;
  /** Marketing name: `L40S`, `H200 NVL`, `A100 80GB PCIe`. */
  name: string;
  /** As pci.ids prints it: `AD102GL [L40S]`. */
  pciName: string;
  /** Board prefix of its vGPU profiles (`L40S`, `A100D`), null when it has none we know. */
  board: string | null;
  vgpuFramework: 'sriov' | 'mdev' | 'none';
}

type Row = [deviceId: string, name: string, pciName: string];

/** [device, marketing name, pci.ids name]. Board and framework come from profiles.ts. */
const ROWS: readonly Row[] = [
  // Blackwell
  ['2bb5', 'RTX PRO 6000 Blackwell Server Edition', 'GB202GL [RTX PRO 6000 Blackwell Server Edition]'],
  ['2bb9', 'RTX 6000D', 'GB202GL [RTX 6000D]'],
  ['2c3a', 'RTX PRO 4500 Blackwell Server Edition', 'GB203GL [RTX PRO 4500 Blackwell Server Edition]'],
  ['2901', 'B200', 'GB100 [B200]'],
  ['2941', 'GB200', 'GB100 [HGX GB200]'],
  // Ada Lovelace
  ['27b8', 'L4', 'AD104GL [L4]'],
  ['26b5', 'L40', 'AD102GL [L40]'],
  ['26b9', 'L40S', 'AD102GL [L40S]'],
  ['26b1', 'RTX 6000 Ada Generation', 'AD102GL [RTX 6000 Ada Generation]'],
  // Hopper
  ['2331', 'H100 PCIe', 'GH100 [H100 PCIe]'],
  ['2330', 'H100 SXM5 80GB', 'GH100 [H100 SXM5 80GB]'],
  ['2321', 'H100 NVL', 'GH100 [H100L 94GB]'],
  ['2335', 'H200', 'GH100 [H200 SXM 141GB]'],
  ['233b', 'H200 NVL', 'GH100 [H200 NVL]'],
  // Ampere
  ['20f1', 'A100 PCIe 40GB', 'GA100 [A100 PCIe 40GB]'],
  ['20b5', 'A100 80GB PCIe', 'GA100 [A100 PCIe 80GB]'],
  ['20b0', 'A100 SXM4 40GB', 'GA100 [A100 SXM4 40GB]'],
  ['20b2', 'A100 SXM4 80GB', 'GA100 [A100 SXM4 80GB]'],
  ['2236', 'A10', 'GA102GL [A10]'],
  ['25b6', 'A16', 'GA107GL [A2 / A16]'],
  // Turing
  ['1eb8', 'T4', 'TU104GL [Tesla T4]'],
];

const MODELS: ReadonlyMap<string, KnownModel> = new Map(
  ROWS.map(([deviceId, name, pciName]) => {
    const board = boardForDevice(deviceId);
    const model: KnownModel = {
      deviceId,
      name,
      pciName,
      board: board?.board ?? null,
      vgpuFramework: board?.framework ?? 'none',
    };
    return [deviceId, Object.freeze(model)] as const;
  }),
);

/** Models that share a device ID with another, told apart by the PCI subsystem device ID. */
const BY_SUBSYSTEM: ReadonlyMap<string, KnownModel> = new Map([
  ['25b6:157e', Object.freeze({ deviceId: '25b6', name: 'A2', pciName: 'GA107GL [A2 / A16]', board: 'A2', vgpuFramework: 'mdev' as const })],
]);

/**
 * The model for an NVIDIA (10de) device ID, any case, with or without `0x`.
 * Pass the subsystem device ID to tell apart boards sharing a device ID
 * (25b6 is A16, or A2 with subsystem 157e).
 */
export function knownModel(deviceId: string, subsystemDeviceId?: string | null): KnownModel | undefined {
  const id = toPciId(deviceId);
  if (id === undefined) return undefined;
  const sub = typeof subsystemDeviceId === 'string' ? toPciId(subsystemDeviceId) : undefined;
  if (sub !== undefined) {
    const special = BY_SUBSYSTEM.get(`${id}:${sub}`);
    if (special) return special;
  }
  return MODELS.get(id);
}

export function allKnownModels(): readonly KnownModel[] {
  return [...MODELS.values()];
}
