/**
 * vGPU profile facts of the Blackwell boards NVIDIA's vgpu-device-manager
 * example config (v0.5.0, vGPU 20) names: RTX PRO 6000 Blackwell Server
 * Edition and RTX 6000D (`DC-`, `6000D-`), RTX PRO 4500 Blackwell Server
 * Edition (also `DC-`), B200 and GB200. All are SR-IOV vGPU boards with MIG.
 * Sources and what is unverified: docs/profiles.md.
 *
 * On the RTX PRO boards a MIG-backed vGPU is time-sliced inside its GPU
 * instance, so several fit in one instance: max instances here are per GPU
 * (instances of the size x vGPUs per instance), as vgpuConfig counts them.
 */
import { graphicsSlices, sevenSlice } from './mig.js';
import { GIB, VGPU_CONFIG, migBacked, sevenSliceMigBacked, timeSliced, type BoardFacts, type MigRow, type Sized } from './board-facts.js';

const BLACKWELL_REF =
  'NVIDIA AI Enterprise "NVIDIA vGPU Types Reference", Blackwell (https://docs.nvidia.com/ai-enterprise/release-8/latest/infra-software/vgpu/reference/blackwell.html)';
const MIG_GUIDE = 'NVIDIA Multi-Instance GPU User Guide, "Supported GPUs" (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-gpus.html)';

/** RTX PRO 6000 Blackwell Server Edition: 96 GB, MIG 1g.24gb x4, 2g.48gb x2, 4g.96gb x1. */
const RTX_PRO_6000: BoardFacts = (() => {
  const mig = (gi: number, rows: Sized): MigRow[] => rows.map(([gb, max]) => [gi, gb, max] as const);
  const q1: MigRow[] = mig(1, [[2, 48], [3, 32], [4, 24], [6, 16], [8, 12], [12, 8], [24, 4]]);
  const c1: MigRow[] = mig(1, [[8, 12], [12, 8], [24, 4]]);
  const x2: Sized = [[12, 8], [16, 6], [24, 4], [48, 2]];
  const x4: Sized = [[24, 4], [32, 3], [48, 2], [96, 1]];
  const tsQ: Sized = [[3, 32], [4, 24], [6, 16], [8, 12], [12, 8], [16, 6], [24, 4], [32, 3], [48, 2], [96, 1]];
  return {
    board: 'DC',
    model: 'NVIDIA RTX PRO 6000 Blackwell Server Edition',
    deviceIds: ['2bb5'],
    framework: 'sriov',
    mdevOnVfs: false,
    framebufferMiB: 96 * GIB,
    maxVfs: 48,
    migSlices: 4,
    mig: graphicsSlices(4, 24, [47, 35, 32]),
    source: `${VGPU_CONFIG}; MIG geometry from ${MIG_GUIDE}`,
    basis: 'vgpuconfig',
    profiles: [
      ...timeSliced('DC', 'Q', tsQ),
      ...timeSliced('DC', 'C', tsQ.filter(([gb]) => gb >= 8)),
      ...timeSliced('DC', 'A', tsQ, 'derived'),
      ...migBacked('DC', q1, undefined, 'Q'),
      ...migBacked('DC', c1),
      ...migBacked('DC', q1, 'derived', 'A'),
      ...migBacked('DC', mig(2, x2), undefined, 'Q'),
      ...migBacked('DC', mig(2, x2)),
      ...migBacked('DC', mig(2, x2), 'derived', 'A'),
      ...migBacked('DC', mig(4, x4), undefined, 'Q'),
      ...migBacked('DC', mig(4, x4)),
      ...migBacked('DC', mig(4, x4), 'derived', 'A'),
    ],
  };
})();

/** RTX 6000D (84 GB, GB202): one full-size time-sliced vGPU, MIG 1g.42gb x2 or 2g.84gb x1. */
const RTX_6000D: BoardFacts = {
  board: '6000D',
  model: 'NVIDIA RTX 6000D',
  deviceIds: ['2bb9'],
  framework: 'sriov',
  mdevOnVfs: false,
  framebufferMiB: 84 * GIB,
  maxVfs: 2,
  migSlices: 2,
  mig: graphicsSlices(2, 42),
  source: VGPU_CONFIG,
  basis: 'vgpuconfig',
  profiles: [
    ...timeSliced('6000D', 'Q', [[84, 1]]),
    ...timeSliced('6000D', 'C', [[84, 1]]),
    ...migBacked('6000D', [[1, 42, 2], [2, 84, 1]], undefined, 'Q'),
    ...migBacked('6000D', [[1, 42, 2], [2, 84, 1]]),
  ],
};

/**
 * RTX PRO 4500 Blackwell Server Edition: 32 GB, MIG 1g.16gb x2 or 2g.32gb x1.
 * Only the sizes NVIDIA's tables show are listed (C series from the Blackwell
 * reference, Q names unique to this board from vgpuConfig); NVIDIA offers more
 * (smaller Q sizes, B series), so names it lacks are left to the driver.
 */
const RTX_PRO_4500: BoardFacts = {
  board: 'DC',
  model: 'NVIDIA RTX PRO 4500 Blackwell Server Edition',
  deviceIds: ['2c3a'],
  framework: 'sriov',
  mdevOnVfs: false,
  framebufferMiB: 32 * GIB,
  maxVfs: 4,
  migSlices: 2,
  mig: graphicsSlices(2, 16),
  partial: true,
  source: `${BLACKWELL_REF}, RTX Pro 4500 SE 32 GB (C series; per-instance counts times instances); ${VGPU_CONFIG} (Q names unique to this board)`,
  basis: 'docs',
  profiles: [
    ...timeSliced('DC', 'C', [[8, 4], [16, 2], [32, 1]]),
    ...timeSliced('DC', 'Q', [[8, 4], [16, 2], [32, 1]], 'derived'),
    ...migBacked('DC', [[1, 8, 4], [1, 16, 2], [2, 8, 4], [2, 16, 2], [2, 32, 1]]),
    ...migBacked('DC', [[1, 16, 2], [2, 8, 4], [2, 32, 1]], 'vgpuconfig', 'Q'),
    ...migBacked('DC', [[1, 8, 4], [2, 16, 2]], 'derived', 'Q'),
  ],
};

/** B200 (180 GB) and GB200 (189 GB for vGPU): C series, one full-size time-sliced vGPU or MIG-backed ones. */
function b200(board: 'B200X' | 'GB200', model: string, deviceId: string, full: number, [s, m, l]: readonly [number, number, number]): BoardFacts {
  return {
    board,
    model,
    deviceIds: [deviceId],
    framework: 'sriov',
    mdevOnVfs: false,
    framebufferMiB: full * GIB,
    maxVfs: 7,
    migSlices: 7,
    mig: sevenSlice(s, m, l, full, false),
    source: `${VGPU_CONFIG}; MIG geometry from ${MIG_GUIDE}`,
    basis: 'vgpuconfig',
    profiles: [...timeSliced(board, 'C', [[full, 1]]), ...sevenSliceMigBacked(board, [s, m, l, full])],
  };
}

export const BLACKWELL_BOARDS: readonly BoardFacts[] = [
  RTX_PRO_6000,
  RTX_6000D,
  RTX_PRO_4500,
  b200('B200X', 'NVIDIA B200', '2901', 180, [23, 45, 90]),
  b200('GB200', 'NVIDIA GB200', '2941', 189, [24, 47, 95]),
];
