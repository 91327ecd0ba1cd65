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
import { BLACKWELL_BOARDS } from './boards-blackwell.js';
import { HOPPER_REF, VGPU_CONFIG, VGPU_GUIDE, GIB, fill, migBacked, sevenSliceMigBacked, timeSliced, type BoardFacts, type ProfileFact, type Sized } from './board-facts.js';
import { sevenSlice } from './mig.js';
import { parseProfile, stripVendorPrefix } from './profile.js';

export type { BoardFacts, FactBasis, ProfileFact } from './board-facts.js';


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
    migSlices: null,
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
  migSlices: null,
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
    migSlices: 7,
    mig: sevenSlice(10, 20, 40, 80, false),
    source: `${VGPU_GUIDE}, ${model}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'C', [[4, 20], [5, 16], [8, 10], [10, 8], [16, 5], [20, 4], [40, 2], [80, 1]]),
      ...sevenSliceMigBacked(board, [10, 20, 40, 80]),
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
  migSlices: 7,
  mig: sevenSlice(12, 24, 47, 94, false),
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
    migSlices: 7,
    mig: sevenSlice(18, 35, 71, 141, false),
    source: `${HOPPER_REF}, ${model}; max instances from ${VGPU_CONFIG} (vgpu-device-manager v0.5.0)`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced(board, 'C', [[4, 32], [7, 20], [8, 16], [14, 10], [17, 8], [28, 5], [35, 4], [70, 2], [141, 1]]),
      ...sevenSliceMigBacked(board, [18, 35, 71, 141]),
    ],
  };
}

// ---- Ampere (mdev on SR-IOV VFs) ------------------------------------------------

/**
 * A100 (40 GB: PCIe `A100`, SXM4 `A100X`; 80 GB: PCIe `A100D`, SXM4 `A100DX`): C series only,
 * identical tables per size; a MIG slice holds an eighth of the framebuffer.
 */
function a100(board: string, model: string, deviceIds: string[], gb: 40 | 80, maxVfs: number, sizes: Sized): BoardFacts {
  const slice = gb / 8;
  return {
    board,
    model,
    deviceIds,
    framework: 'mdev',
    mdevOnVfs: true,
    framebufferMiB: gb * GIB,
    maxVfs,
    migSlices: 7,
    mig: sevenSlice(slice, 2 * slice, 4 * slice, gb, true),
    source: `${VGPU_GUIDE}, ${model}; max instances from ${VGPU_CONFIG}`,
    basis: 'vgpuconfig',
    profiles: [...timeSliced(board, 'C', sizes), ...sevenSliceMigBacked(board, [slice, 2 * slice, 4 * slice, gb])],
  };
}

const A100_40_SIZES: Sized = [[4, 10], [5, 8], [8, 5], [10, 4], [20, 2], [40, 1]];
const A100_80_SIZES: Sized = [[4, 20], [8, 10], [10, 8], [16, 5], [20, 4], [40, 2], [80, 1]];

const A10: BoardFacts = {
  board: 'A10',
  model: 'NVIDIA A10',
  deviceIds: ['2236'],
  framework: 'mdev',
  mdevOnVfs: true,
  framebufferMiB: 24 * GIB,
  maxVfs: 24,
  migSlices: null,
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
    migSlices: null,
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
  migSlices: null,
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
  a100('A100', 'NVIDIA A100 PCIe 40GB', ['20f1'], 40, 10, A100_40_SIZES),
  a100('A100X', 'NVIDIA A100 SXM4 40GB', ['20b0'], 40, 10, A100_40_SIZES),
  a100('A100D', 'NVIDIA A100 80GB PCIe', ['20b5'], 80, 20, A100_80_SIZES),
  a100('A100DX', 'NVIDIA A100 SXM4 80GB', ['20b2'], 80, 20, A100_80_SIZES),
  A10,
  ga107('A16', '14a9'),
  ga107('A2', '157e'),
  T4,
  ...BLACKWELL_BOARDS,
]);

/** Upper-case profile name -> every board that offers it (RTX PRO 6000 and 4500 Blackwell both offer `DC-16Q`). */
const byProfile = new Map<string, { board: BoardFacts; fact: ProfileFact }[]>();
for (const board of BOARDS) {
  for (const fact of board.profiles) {
    const key = fact.profile.toUpperCase();
    byProfile.set(key, [...(byProfile.get(key) ?? []), { board, fact }]);
  }
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

/** Every board that uses a PCI device ID (25b6: A16 and A2). */
export function boardsForDevice(deviceId: string): BoardFacts[] {
  const id = toPciId(deviceId);
  return id === undefined ? [] : BOARDS.filter((b) => b.deviceIds.includes(id));
}

/**
 * The name under which `board` lists a profile: the name itself, or, as
 * NVIDIA's device manager does, the name without its MIG attribute when the
 * board's types lack it (RTX PRO 6000 Blackwell's `DC-1-24QGFX` is type
 * `DC-1-24Q` on a GPU instance made with the graphics attribute).
 */
function lookupNames(profile: string): string[] {
  const p = stripVendorPrefix(profile).toUpperCase();
  const parsed = parseProfile(p);
  return parsed?.attribute ? [p, p.slice(0, -parsed.attribute.length)] : [p];
}

/** A board's fact for a profile name (exact, else without its MIG attribute); undefined when the board lacks it. */
export function boardProfile(board: BoardFacts, profile: string): ProfileFact | undefined {
  if (typeof profile !== 'string') return undefined;
  for (const name of lookupNames(profile)) {
    const hit = byProfile.get(name)?.find((x) => x.board === board);
    if (hit) return hit.fact;
  }
  return undefined;
}

/**
 * The fact for a profile name when it does not depend on the card: one board
 * offers the name, or every board that does agrees on it. Undefined when the
 * name is unknown or means different things on different boards (`DC-16Q`: six
 * fit on an RTX PRO 6000, two on a 4500); ask boardProfile() with the card's board.
 */
export function profileFact(profile: string): ProfileFact | undefined {
  if (typeof profile !== 'string') return undefined;
  for (const name of lookupNames(profile)) {
    const hits = byProfile.get(name);
    if (!hits) continue;
    const first = hits[0]!.fact;
    const same = hits.every(({ fact: f }) => f.maxInstances === first.maxInstances && f.framebufferMiB === first.framebufferMiB && f.series === first.series && f.migBacked === first.migBacked);
    return same ? first : undefined;
  }
  return undefined;
}

/**
 * The boards a profile name can belong to without knowing the card: those
 * that offer it, else those whose prefix it has (`DC-99Q`: both RTX PRO
 * Blackwell boards), longest prefix first. Empty for boards vmgpu has no facts for.
 */
export function boardsForProfile(profile: string): BoardFacts[] {
  if (typeof profile !== 'string') return [];
  for (const name of lookupNames(profile)) {
    const hits = byProfile.get(name);
    if (hits) return hits.map((h) => h.board);
  }
  const p = stripVendorPrefix(profile).toUpperCase();
  const prefixed = BOARDS.filter((b) => p.startsWith(`${b.board.toUpperCase()}-`) && /^[0-9]/.test(p.slice(b.board.length + 1)));
  const longest = Math.max(0, ...prefixed.map((b) => b.board.length));
  return prefixed.filter((b) => b.board.length === longest);
}
