/**
 * The hardware the simulator can pretend to be: GPU models with their PCI
 * identity and SR-IOV geometry, and driver versions with their quirks.
 *
 * Profile facts (framebuffer, max instances) come from src/model/boards.ts,
 * the same data the planner uses. Type IDs are synthetic and differ per
 * simulated driver version, as real ones do: this file is the only place in
 * vmgpu where type IDs are made up, and nothing outside the simulator may use them.
 */
import { boardForDevice, type BoardFacts, type ProfileFact } from '../model/boards.js';
import { InputError } from '../model/errors.js';

export interface SimModel {
  /** Short key used on the command line: `L40S`, `H200`, `A100`... */
  key: string;
  deviceId: string;
  subsystemDeviceId: string;
  /** `030000` VGA or `030200` 3D controller. */
  classCode: string;
  revision: string;
  framework: 'sriov' | 'mdev';
  /** SR-IOV geometry for SR-IOV vGPU boards. */
  totalVfs: number;
  vfOffset: number;
  vfStride: number;
  /** Has an HDMI/DP audio function sharing the IOMMU group (10de:<audioDeviceId>). */
  audioDeviceId: string | null;
  /** Ampere: the mdev parents are the SR-IOV VFs (one vGPU per VF), not the PF. */
  mdevOnVfs?: boolean;
  /** The mdev type-name prefix the driver prints: `GRID` on older drivers for Turing, `NVIDIA` otherwise. */
  mdevNamePrefix: 'GRID' | 'NVIDIA';
  /** What the driver prints before an SR-IOV type's profile when not just `NVIDIA` (`NVIDIA RTX Pro 6000 Blackwell DC-48Q`). */
  typeNamePrefix?: string;
}

type Geometry = Pick<SimModel, 'framework' | 'totalVfs' | 'vfOffset' | 'vfStride' | 'audioDeviceId' | 'mdevNamePrefix' | 'mdevOnVfs'>;

/** An SR-IOV vGPU card without an audio function. */
const sriov = (totalVfs: number): Geometry => ({ framework: 'sriov', totalVfs, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' });
/** An Ampere card: mdev vGPU on its SR-IOV VFs, one vGPU per VF. */
const ampere = (totalVfs: number): Geometry => ({ ...sriov(totalVfs), framework: 'mdev', mdevOnVfs: true });

const MODELS: SimModel[] = [
  { key: 'L4', deviceId: '27b8', subsystemDeviceId: '16ca', classCode: '030200', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'L40', deviceId: '26b5', subsystemDeviceId: '169d', classCode: '030200', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'L40S', deviceId: '26b9', subsystemDeviceId: '1851', classCode: '030200', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'RTX6000-Ada', deviceId: '26b1', subsystemDeviceId: '16a1', classCode: '030000', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: '22ba', mdevNamePrefix: 'NVIDIA' },
  { key: 'H100', deviceId: '2331', subsystemDeviceId: '1626', classCode: '030200', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'H100-SXM', deviceId: '2330', subsystemDeviceId: '16c1', classCode: '030200', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'H200', deviceId: '2335', subsystemDeviceId: '18bf', classCode: '030200', revision: 'a1', framework: 'sriov', totalVfs: 32, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  // Ampere: SR-IOV VFs are the mdev parents (one vGPU per VF); VF counts from profiles.ts maxVfs.
  { key: 'A100', deviceId: '20b5', subsystemDeviceId: '1533', classCode: '030200', revision: 'a1', framework: 'mdev', totalVfs: 20, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'A100-40GB', deviceId: '20f1', subsystemDeviceId: '145f', classCode: '030200', revision: 'a1', framework: 'mdev', totalVfs: 10, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'A10', deviceId: '2236', subsystemDeviceId: '1482', classCode: '030200', revision: 'a1', framework: 'mdev', totalVfs: 24, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'A16', deviceId: '25b6', subsystemDeviceId: '14a9', classCode: '030200', revision: 'a1', framework: 'mdev', totalVfs: 16, vfOffset: 4, vfStride: 1, audioDeviceId: null, mdevNamePrefix: 'NVIDIA' },
  { key: 'T4', deviceId: '1eb8', subsystemDeviceId: '12a2', classCode: '030200', revision: 'a1', framework: 'mdev', totalVfs: 0, vfOffset: 0, vfStride: 0, audioDeviceId: null, mdevNamePrefix: 'GRID' },
  // The other boards vmgpu has facts for. A2's subsystem (157e) tells it from A16; the other
  // subsystem IDs are placeholders. Hopper and B200-class cards get 32 VFs like the Hopper models
  // above, Ampere ones the facts' maxVfs; RTX 6000D the RTX PRO 6000's 48 (same GB202 die), the
  // 4500 16 (NVIDIA's vPC sizing guide: 16 DC-2B per board). Real counts: docs/profiles.md.
  { key: 'H100-NVL', deviceId: '2321', subsystemDeviceId: '1839', classCode: '030200', revision: 'a1', ...sriov(32) },
  { key: 'H200-NVL', deviceId: '233b', subsystemDeviceId: '1996', classCode: '030200', revision: 'a1', ...sriov(32) },
  { key: 'A100-SXM4', deviceId: '20b2', subsystemDeviceId: '1463', classCode: '030200', revision: 'a1', ...ampere(20) },
  { key: 'A100-SXM4-40GB', deviceId: '20b0', subsystemDeviceId: '134f', classCode: '030200', revision: 'a1', ...ampere(10) },
  { key: 'A2', deviceId: '25b6', subsystemDeviceId: '157e', classCode: '030200', revision: 'a1', ...ampere(16) },
  // Blackwell. The RTX PRO 6000 driver prints `NVIDIA RTX Pro 6000 Blackwell DC-1-3Q` (a public report of
  // its creatable types); the 4500's prefix is assumed to follow it.
  { key: 'RTX-PRO-6000', deviceId: '2bb5', subsystemDeviceId: '204e', classCode: '030200', revision: 'a1', ...sriov(48), typeNamePrefix: 'NVIDIA RTX Pro 6000 Blackwell' },
  { key: 'RTX-6000D', deviceId: '2bb9', subsystemDeviceId: '2051', classCode: '030200', revision: 'a1', ...sriov(48) },
  { key: 'RTX-PRO-4500', deviceId: '2c3a', subsystemDeviceId: '2058', classCode: '030200', revision: 'a1', ...sriov(16), typeNamePrefix: 'NVIDIA RTX Pro 4500 Blackwell' },
  { key: 'B200', deviceId: '2901', subsystemDeviceId: '1999', classCode: '030200', revision: 'a1', ...sriov(32) },
  { key: 'GB200', deviceId: '2941', subsystemDeviceId: '20d5', classCode: '030200', revision: 'a1', ...sriov(32) },
];

export function simModels(): readonly SimModel[] {
  return MODELS;
}

export function simModel(key: string): SimModel {
  const m = MODELS.find((x) => x.key.toLowerCase() === key.toLowerCase());
  if (!m) throw new InputError(`unknown simulated GPU model ${JSON.stringify(key)}: choose one of ${MODELS.map((x) => x.key).join(', ')}`);
  return m;
}

export function boardOf(model: SimModel): BoardFacts {
  const b = boardForDevice(model.deviceId, model.subsystemDeviceId);
  if (!b) throw new Error(`simulator: no profile facts for ${model.key} (10de:${model.deviceId}) in src/model/boards.ts`);
  return b;
}

export interface SimDriver {
  version: string;
  /** Rejects a value with a trailing newline written to current_vgpu_type (EINVAL), as some versions do (seed 001). */
  rejectsTrailingNewline: boolean;
}

/** Simulated driver versions. IDs differ per version; the newest rejects a trailing newline. */
export const SIM_DRIVERS: readonly SimDriver[] = [
  { version: '550.127.06', rejectsTrailingNewline: false },
  { version: '570.158.02', rejectsTrailingNewline: false },
  { version: '595.58.02', rejectsTrailingNewline: true },
];

export function simDriver(version: string): SimDriver {
  return SIM_DRIVERS.find((d) => d.version === version) ?? { version, rejectsTrailingNewline: false };
}

/** A stable small hash (FNV-1a) so IDs are deterministic per driver version and board. */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export interface SimType extends ProfileFact {
  id: number;
  /** Full name as the driver prints it: `NVIDIA L40S-12Q`, `GRID T4-1Q`. */
  name: string;
}

/** The synthetic type table of one board under one driver version. */
export function simTypes(model: SimModel, driverVersion: string): SimType[] {
  const board = boardOf(model);
  // A base in 100..2099 that moves with the driver version, as real IDs do.
  const base = 100 + (fnv(`${driverVersion}/${board.board}`) % 2000);
  const prefix = model.framework === 'mdev' ? model.mdevNamePrefix : (model.typeNamePrefix ?? 'NVIDIA');
  return board.profiles.map((p, i) => ({ ...p, id: base + i, name: `${prefix} ${p.profile}` }));
}
