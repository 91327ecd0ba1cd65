/**
 * The shape of vGPU profile facts and the helpers the board tables are written
 * with. Data only; the tables are boards.ts (Ada, Hopper, Ampere, Turing) and
 * boards-blackwell.ts; docs/profiles.md names the sources.
 */
import type { MigGeometry } from './mig.js';
import type { VgpuSeries } from './profile.js';

/**
 * How a fact was established (see docs/profiles.md):
 * - `vgpuconfig`: NVIDIA's vgpuConfig.xml (shipped with the vGPU manager), as
 *   rendered into NVIDIA/vgpu-device-manager `examples/config-example.yaml`;
 * - `docs`: a table on NVIDIA's documentation site (named in `source`);
 * - `secondary`: a third-party copy of NVIDIA's vGPU types reference table;
 * - `derived`: computed from the board's framebuffer, VF count and MIG geometry
 *   by the rule the verified tables follow; not checked against a table.
 */
export type FactBasis = 'vgpuconfig' | 'docs' | 'secondary' | 'derived';

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
  /** GPU instance slices of the board's MIG geometry (7 on A100/H100/B200, 4 on RTX PRO 6000 Blackwell); null without MIG. */
  migSlices: number | null;
  /** GPU instance profiles and placements (src/model/mig.ts), for boards with MIG-backed profiles. */
  mig?: MigGeometry;
  /**
   * NVIDIA offers profiles on this board that the table does not list: a
   * name it lacks is left to the node's driver instead of refused.
   */
  partial?: boolean;
  /** Document and table the facts come from. */
  source: string;
  basis: FactBasis;
  profiles: ProfileFact[];
}

export const GIB = 1024;

export const VGPU_GUIDE =
  'NVIDIA Virtual GPU Software User Guide, "Virtual GPU Types for Supported GPUs" (https://docs.nvidia.com/vgpu/latest/grid-vgpu-user-guide/index.html#virtual-gpu-types-grid)';
export const VGPU_CONFIG =
  'vgpuConfig.xml as rendered in NVIDIA/vgpu-device-manager examples/config-example.yaml (per-profile max instances, device-ID to board map)';
export const HOPPER_REF =
  'NVIDIA AI Enterprise "NVIDIA vGPU Types Reference", Hopper (https://docs.nvidia.com/ai-enterprise/release-7/7.5/infra-software/vgpu/reference/hopper.html)';

export type Sized = readonly (readonly [gb: number, max: number])[];

function fact(profile: string, gb: number, max: number, series: VgpuSeries, mig: boolean, basis: FactBasis | undefined): ProfileFact {
  const f: ProfileFact = { profile, framebufferMiB: gb * GIB, maxInstances: max, series, migBacked: mig };
  if (basis) f.basis = basis;
  return f;
}

export function timeSliced(board: string, series: VgpuSeries, sizes: Sized, basis?: FactBasis): ProfileFact[] {
  return sizes.map(([gb, max]) => fact(`${board}-${gb}${series}`, gb, max, series, false, basis));
}

/** One MIG-backed row: [GPU instance slices, GB, max instances per GPU, media extensions]. */
export type MigRow = readonly [gi: number, gb: number, max: number, me?: boolean];

/** MIG-backed profiles of one series (`A100-1-5C`, `A100-1-5CME`, `DC-2-24Q`). */
export function migBacked(board: string, rows: readonly MigRow[], basis?: FactBasis, series: VgpuSeries = 'C'): ProfileFact[] {
  return rows.map(([gi, gb, max, me]) => fact(`${board}-${gi}-${gb}${series}${me ? 'ME' : ''}`, gb, max, series, true, basis));
}

/**
 * The MIG-backed C profiles of a seven-slice card (A100, H100, H200, B200), one per GPU
 * instance profile of `sevenSlice(small, double, half, full)` (model/mig.ts), with the most
 * of each that fit on the card.
 */
export function sevenSliceMigBacked(board: string, [small, double, half, full]: readonly [number, number, number, number]): ProfileFact[] {
  return migBacked(board, [[1, small, 7], [1, small, 1, true], [1, double, 4], [2, double, 3], [3, half, 2], [4, half, 1], [7, full, 1]]);
}

/** Max instances by the rule every verified table follows: framebuffer / size, capped by the VF count. */
export function fill(totalGb: number, cap: number | null, gbs: readonly number[]): Sized {
  return gbs.map((gb) => [gb, Math.min(Math.floor(totalGb / gb), cap ?? Number.MAX_SAFE_INTEGER)] as const);
}

