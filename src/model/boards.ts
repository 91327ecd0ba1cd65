/**
 * vGPU profile facts: which profiles each supported board offers, their
 * framebuffer and how many fit on one GPU. Data only, from NVIDIA's public
 * documentation; docs/profiles.md names the sources and lists what could not
 * be verified.
 *
 * Never put a vGPU type ID here: IDs are per card model and driver version and
 * come from the node (creatable_vgpu_types, mdev type directories, nvidia-smi)
 * or the on-disk catalog cache.
 */
import { toPciId } from './pci.js';
import { stripVendorPrefix, type VgpuSeries } from './profile.js';

/**
 * How a fact was established (see docs/profiles.md):
 * - `vgpuconfig`: NVIDIA's vgpuConfig.xml (shipped with the vGPU manager), as
 *   rendered into NVIDIA/vgpu-device-manager `examples/config-example.yaml`;
 * - `secondary`: a third-party copy of NVIDIA's vGPU types reference table;
 * - `derived`: computed from the board's framebuffer, VF count and MIG geometry
 *   by the rule the verified tables follow; not checked against a table.
 */
export type FactBasis = 'vgpuconfig' | 'secondary' | 'derived';

export interface ProfileFact {
  /** Profile name without the `NVIDIA ` / `GRID ` prefix: `L40S-12Q`, `A100-1-5C`. */
  profile: string;
  /** Nominal framebuffer: the GB in the name times 1024 (the driver's mdev description is exact). */
  framebufferMiB: number;
  /** Maximum instances of this profile on one GPU (homogeneous). */
  maxInstances: number;
  series: VgpuSeries;
  migBacked: boolean;
  /** Where this fact comes from; absent means the board's `basis`. */
  basis?: FactBasis;
}

export interface BoardFacts {
  /** Board prefix used in profile names: `L40S`, `RTX6000-Ada`, `H100XM`, `A100D`. */
  board: string;
  /** Marketing name: `NVIDIA L40S`, `NVIDIA H200 NVL`, `NVIDIA A100 80GB PCIe`. */
  model: string;
  /** PCI device IDs (vendor 10de, lower-case hex) these profiles apply to. */
  deviceIds: string[];
  /**
   * When several boards share a device ID (A16 and A2 are both 10de:25b6), the
   * PCI subsystem device IDs that pick this board.
   */
  subsystemDeviceIds?: string[];
  /** SR-IOV vGPU (Ada, Hopper, Blackwell) or mdev (Turing, Ampere). */
  framework: 'sriov' | 'mdev';
  /** Ampere: mdev types live on the SR-IOV VFs, not on the PF. */
  mdevOnVfs: boolean;
  /** Total framebuffer usable for vGPU on one GPU. */
  framebufferMiB: number;
  /**
   * sriov_totalvfs for boards with SR-IOV, null without SR-IOV (Turing). Where
   * NVIDIA does not state it, the largest max-instance count of any profile (a
   * lower bound: every vGPU needs its own VF); docs/profiles.md says which.
   */
  maxVfs: number | null;
  /** Document and table the facts come from. */
  source: string;
  basis: FactBasis;
  profiles: ProfileFact[];
}

const GIB = 1024;

const VGPU_GUIDE =
  'NVIDIA Virtual GPU Software User Guide, "Virtual GPU Types for Supported GPUs" (https://docs.nvidia.com/vgpu/latest/grid-vgpu-user-guide/index.html#virtual-gpu-types-grid)';
const VGPU_CONFIG =
  'vgpuConfig.xml as rendered in NVIDIA/vgpu-device-manager examples/config-example.yaml (per-profile max instances, device-ID to board map)';
const HOPPER_REF =
  'NVIDIA AI Enterprise "NVIDIA vGPU Types Reference", Hopper (https://docs.nvidia.com/ai-enterprise/release-7/7.5/infra-software/vgpu/reference/hopper.html)';

type Sized = readonly (readonly [gb: number, max: number])[];

function timeSliced(board: string, series: VgpuSeries, sizes: Sized, basis?: FactBasis): ProfileFact[] {
  return sizes.map(([gb, max]) => {
    const fact: ProfileFact = {
      profile: `${board}-${gb}${series}`,
      framebufferMiB: gb * GIB,
      maxInstances: max,
      series,
      migBacked: false,
    };
    if (basis) fact.basis = basis;
    return fact;
  });
}

/** MIG-backed C profiles: [gpu instance slices, GB, max instances, media extensions]. */
function migBacked(board: string, rows: readonly (readonly [gi: number, gb: number, max: number, me?: boolean])[], basis?: FactBasis): ProfileFact[] {
  return rows.map(([gi, gb, max, me]) => {
    const fact: ProfileFact = {
      profile: `${board}-${gi}-${gb}C${me ? 'ME' : ''}`,
      framebufferMiB: gb * GIB,
      maxInstances: max,
      series: 'C',
      migBacked: true,
    };
    if (basis) fact.basis = basis;
    return fact;
  });
}

/** Max instances by the rule every verified table follows: framebuffer / size, capped by the VF count. */
function fill(totalGb: number, cap: number | null, gbs: readonly number[]): Sized {
  return gbs.map((gb) => [gb, Math.min(Math.floor(totalGb / gb), cap ?? Number.MAX_SAFE_INTEGER)] as const);
}

// ---- Ada Lovelace (SR-IOV vGPU) -------------------------------------------------

/** L40, L40S and RTX 6000 Ada share a 48 GB AD102 layout and 32 VFs. */
function ada48(board: string, model: string, deviceIds: string[]): BoardFacts {
  const q = [1, 2, 3, 4, 6, 8, 12, 16, 24, 48];
  const c = [4, 6, 8, 12, 16, 24, 48];
  return {
    board,
    model,
    deviceIds,
    framework: 'sriov',
    mdevOnVfs: false,
    framebufferMiB: 48 * GIB,
    maxVfs: 32,
    source: `${VGPU_GUIDE}, ${model}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'Q', fill(48, 32, q)),
      ...timeSliced(board, 'C', fill(48, 32, c)),
      ...timeSliced(board, 'B', fill(48, 32, [1, 2]), 'derived'),
      ...timeSliced(board, 'A', fill(48, 32, q), 'derived'),
    ],
  };
}

const L4: BoardFacts = {
  board: 'L4',
  model: 'NVIDIA L4',
  deviceIds: ['27b8'],
  framework: 'sriov',
  mdevOnVfs: false,
  framebufferMiB: 24 * GIB,
  maxVfs: 24,
  source: `${VGPU_GUIDE}, NVIDIA L4; max instances from ${VGPU_CONFIG}`,
  basis: 'vgpuconfig',
  profiles: [
    ...timeSliced('L4', 'Q', fill(24, 24, [1, 2, 3, 4, 6, 8, 12, 24])),
    ...timeSliced('L4', 'C', fill(24, 24, [4, 6, 8, 12, 24])),
    ...timeSliced('L4', 'B', fill(24, 24, [1, 2]), 'derived'),
    ...timeSliced('L4', 'A', fill(24, 24, [1, 2, 3, 4, 6, 8, 12, 24]), 'derived'),
  ],
};

// ---- Hopper (SR-IOV vGPU, C series only) ----------------------------------------

/** H100 80 GB (PCIe `H100`, SXM5 `H100XM`): identical tables in vgpuConfig. */
function h100x80(board: string, model: string, deviceIds: string[]): BoardFacts {
  return {
    board,
    model,
    deviceIds,
    framework: 'sriov',
    mdevOnVfs: false,
    framebufferMiB: 80 * GIB,
    maxVfs: 20,
    source: `${VGPU_GUIDE}, ${model}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'C', [[4, 20], [5, 16], [8, 10], [10, 8], [16, 5], [20, 4], [40, 2], [80, 1]]),
      ...migBacked(board, [[1, 10, 7], [1, 10, 1, true], [1, 20, 4], [2, 20, 3], [3, 40, 2], [4, 40, 1], [7, 80, 1]]),
    ],
  };
}

const H100L: BoardFacts = {
  board: 'H100L',
  model: 'NVIDIA H100 NVL',
  deviceIds: ['2321'],
  framework: 'sriov',
  mdevOnVfs: false,
  framebufferMiB: 94 * GIB,
  maxVfs: 23,
  source: `${VGPU_GUIDE}, NVIDIA H100 PCIe 94GB (H100 NVL); max instances from ${VGPU_CONFIG}`,
  basis: 'vgpuconfig',
  profiles: [
    ...timeSliced('H100L', 'C', [[4, 23], [6, 15], [11, 8], [15, 6], [23, 4], [47, 2], [94, 1]]),
    ...migBacked('H100L', [[1, 12, 7], [1, 12, 1, true], [1, 24, 4], [2, 24, 3], [3, 47, 2], [4, 47, 1], [7, 94, 1]]),
  ],
};

/** H200 141 GB: NVL (PCIe) profiles are `H200-*`, SXM5 profiles `H200X-*`. */
function h200(board: string, model: string, deviceIds: string[]): BoardFacts {
  return {
    board,
    model,
    deviceIds,
    framework: 'sriov',
    mdevOnVfs: false,
    framebufferMiB: 141 * GIB,
    maxVfs: 32,
    source: `${HOPPER_REF}, ${model} (time-sliced table via a third-party copy; MIG-backed rows derived from the H200 MIG geometry, see docs/profiles.md)`,
    basis: 'secondary',
    profiles: [
      ...timeSliced(board, 'C', [[4, 32], [7, 20], [8, 16], [14, 10], [17, 8], [28, 5], [35, 4], [70, 2], [141, 1]]),
      ...migBacked(board, [[1, 18, 7], [1, 18, 1, true], [1, 35, 4], [2, 35, 3], [3, 71, 2], [4, 71, 1], [7, 141, 1]], 'derived'),
    ],
  };
}

// ---- Ampere (mdev on SR-IOV VFs) ------------------------------------------------

/** A100 40 GB (PCIe `A100`, SXM4 `A100X`): C series only, identical tables. */
function a100x40(board: string, model: string, deviceIds: string[]): BoardFacts {
  return {
    board,
    model,
    deviceIds,
    framework: 'mdev',
    mdevOnVfs: true,
    framebufferMiB: 40 * GIB,
    maxVfs: 10,
    source: `${VGPU_GUIDE}, ${model}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'C', [[4, 10], [5, 8], [8, 5], [10, 4], [20, 2], [40, 1]]),
      ...migBacked(board, [[1, 5, 7], [1, 5, 1, true], [1, 10, 4], [2, 10, 3], [3, 20, 2], [4, 20, 1], [7, 40, 1]]),
    ],
  };
}

/** A100 80 GB (PCIe `A100D`, SXM4 `A100DX`). */
function a100x80(board: string, model: string, deviceIds: string[]): BoardFacts {
  return {
    board,
    model,
    deviceIds,
    framework: 'mdev',
    mdevOnVfs: true,
    framebufferMiB: 80 * GIB,
    maxVfs: 20,
    source: `${VGPU_GUIDE}, ${model}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'C', [[4, 20], [8, 10], [10, 8], [16, 5], [20, 4], [40, 2], [80, 1]]),
      ...migBacked(board, [[1, 10, 7], [1, 10, 1, true], [1, 20, 4], [2, 20, 3], [3, 40, 2], [4, 40, 1], [7, 80, 1]]),
    ],
  };
}

const A10: BoardFacts = {
  board: 'A10',
  model: 'NVIDIA A10',
  deviceIds: ['2236'],
  framework: 'mdev',
  mdevOnVfs: true,
  framebufferMiB: 24 * GIB,
  maxVfs: 24,
  source: `${VGPU_GUIDE}, NVIDIA A10; max instances from ${VGPU_CONFIG}`,
  basis: 'vgpuconfig',
  profiles: [
    ...timeSliced('A10', 'Q', fill(24, 24, [1, 2, 3, 4, 6, 8, 12, 24])),
    ...timeSliced('A10', 'C', fill(24, 24, [4, 6, 8, 12, 24])),
    ...timeSliced('A10', 'B', fill(24, 24, [1, 2]), 'derived'),
    ...timeSliced('A10', 'A', fill(24, 24, [1, 2, 3, 4, 6, 8, 12, 24]), 'derived'),
  ],
};

/** A16 (4 GPUs of 16 GB per board) and A2 share device 25b6; the subsystem tells them apart. */
function ga107(board: 'A16' | 'A2', subsystem: string): BoardFacts {
  const q = [1, 2, 4, 8, 16];
  return {
    board,
    model: `NVIDIA ${board}`,
    deviceIds: ['25b6'],
    subsystemDeviceIds: [subsystem],
    framework: 'mdev',
    mdevOnVfs: true,
    framebufferMiB: 16 * GIB,
    maxVfs: 16,
    source: `${VGPU_GUIDE}, NVIDIA ${board}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'Q', fill(16, 16, q)),
      ...timeSliced(board, 'C', fill(16, 16, [4, 8, 16])),
      ...timeSliced(board, 'B', fill(16, 16, [1, 2]), 'derived'),
      ...timeSliced(board, 'A', fill(16, 16, q), 'derived'),
    ],
  };
}

// ---- Turing (mdev on the PF, no SR-IOV) -------------------------------------------

const T4: BoardFacts = {
  board: 'T4',
  model: 'NVIDIA T4',
  deviceIds: ['1eb8'],
  framework: 'mdev',
  mdevOnVfs: false,
  framebufferMiB: 16 * GIB,
  maxVfs: null,
  source: `${VGPU_GUIDE}, Tesla T4; max instances from ${VGPU_CONFIG}`,
  basis: 'vgpuconfig',
  profiles: [
    ...timeSliced('T4', 'Q', fill(16, null, [1, 2, 4, 8, 16])),
    ...timeSliced('T4', 'C', fill(16, null, [4, 8, 16])),
    ...timeSliced('T4', 'B', fill(16, null, [1, 2]), 'derived'),
    ...timeSliced('T4', 'A', fill(16, null, [1, 2, 4, 8, 16]), 'derived'),
  ],
};

const BOARDS: readonly BoardFacts[] = Object.freeze([
  L4,
  ada48('L40', 'NVIDIA L40', ['26b5']),
  ada48('L40S', 'NVIDIA L40S', ['26b9']),
  ada48('RTX6000-Ada', 'NVIDIA RTX 6000 Ada Generation', ['26b1']),
  h100x80('H100', 'NVIDIA H100 PCIe', ['2331']),
  h100x80('H100XM', 'NVIDIA H100 SXM5 80GB', ['2330']),
  H100L,
  h200('H200X', 'NVIDIA H200 SXM5 141GB', ['2335']),
  h200('H200', 'NVIDIA H200 NVL', ['233b']),
  a100x40('A100', 'NVIDIA A100 PCIe 40GB', ['20f1']),
  a100x40('A100X', 'NVIDIA A100 SXM4 40GB', ['20b0']),
  a100x80('A100D', 'NVIDIA A100 80GB PCIe', ['20b5']),
  a100x80('A100DX', 'NVIDIA A100 SXM4 80GB', ['20b2']),
  A10,
  ga107('A16', '14a9'),
  ga107('A2', '157e'),
  T4,
]);

const byProfile = new Map<string, { board: BoardFacts; fact: ProfileFact }>();
for (const board of BOARDS) {
  for (const fact of board.profiles) byProfile.set(fact.profile.toUpperCase(), { board, fact });
}

export function allBoards(): readonly BoardFacts[] {
  return BOARDS;
}

/**
 * The board whose profiles apply to a PCI device ID (vendor 10de). When two
 * boards share the ID (A16/A2), the subsystem device ID chooses; without it the
 * first listed board (A16) is returned.
 */
export function boardForDevice(deviceId: string, subsystemDeviceId?: string | null): BoardFacts | undefined {
  const id = toPciId(deviceId);
  if (id === undefined) return undefined;
  const matches = BOARDS.filter((b) => b.deviceIds.includes(id));
  const sub = typeof subsystemDeviceId === 'string' ? toPciId(subsystemDeviceId) : undefined;
  if (matches.length <= 1 || sub === undefined) return matches[0];
  return matches.find((b) => b.subsystemDeviceIds?.includes(sub)) ?? matches[0];
}

export function profileFact(profile: string): ProfileFact | undefined {
  if (typeof profile !== 'string') return undefined;
  return byProfile.get(stripVendorPrefix(profile).toUpperCase())?.fact;
}

/** `L40S-12Q` -> L40S; also profiles not in the table, by the longest board prefix. */
export function boardForProfile(profile: string): BoardFacts | undefined {
  if (typeof profile !== 'string') return undefined;
  const p = stripVendorPrefix(profile).toUpperCase();
  const known = byProfile.get(p);
  if (known) return known.board;
  let best: BoardFacts | undefined;
  for (const b of BOARDS) {
    const prefix = `${b.board.toUpperCase()}-`;
    if (p.startsWith(prefix) && /^[0-9]/.test(p.slice(prefix.length)) && (!best || b.board.length > best.board.length)) best = b;
  }
  return best;
}
