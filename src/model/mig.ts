/**
 * MIG geometry: the GPU instance profiles a board offers, where each may be
 * placed, and which profile a MIG-backed vGPU needs. Data and pure math only;
 * docs/profiles.md ("MIG-backed vGPU") names the sources and what is unverified.
 *
 * A GPU instance occupies `size` consecutive memory slots starting at one of
 * its profile's `starts` (NVIDIA's `nvidia-smi mig -lgipp`: `{0,4}:4` is
 * starts 0 and 4, size 4); instances may not overlap. vmgpu places every
 * instance itself (`nvidia-smi mig -cgi <profile>:<start>`), so a geometry
 * that fits is always built the same way.
 */
import type { ProfileFact } from './board-facts.js';
import { parseProfile } from './profile.js';

export interface GpuInstanceProfile {
  /** As nvidia-smi names it: `1g.10gb`, `1g.10gb+me`, `1g.24gb+gfx`. */
  name: string;
  /** NVIDIA's GPU instance profile ID (`-lgip`), when known; vmgpu creates by ID when it has one, else by name. */
  id: number | null;
  /** Compute slices (the `1` of `1g`). */
  slices: number;
  /** Memory in GB, as in the name. */
  gb: number;
  /** Memory slots one instance occupies. */
  size: number;
  /** Valid first slots. */
  starts: readonly number[];
  /** Most instances of this profile on one GPU (`1g.10gb+me`: one). */
  max: number;
  /** `ME`: media extensions; `GFX`: graphics (RTX PRO Blackwell, where every MIG-backed vGPU needs it). */
  attribute: 'ME' | 'GFX' | null;
}

export interface MigGeometry {
  /** Memory slots of the card (8 on A100/H100/B200, 4 on RTX PRO 6000 Blackwell). */
  slots: number;
  profiles: readonly GpuInstanceProfile[];
  /**
   * `one`: one MIG-backed vGPU per GPU instance (Ampere, Hopper, B200);
   * `time-sliced`: several vGPUs of one size share an instance (RTX PRO Blackwell).
   */
  vgpusPerInstance: 'one' | 'time-sliced';
  /** Enabling MIG mode resets the GPU (Ampere); from Hopper on it does not, and the mode does not survive a reboot. */
  modeSwitchResets: boolean;
  source: string;
}

const MIG_GUIDE_PROFILES = 'NVIDIA Multi-Instance GPU User Guide, "Supported MIG Profiles" and "List GPU Instance Profiles" (nvidia-smi mig -lgipp)';

const gi = (name: string, id: number | null, slices: number, gb: number, size: number, starts: number[], max: number, attribute: GpuInstanceProfile['attribute'] = null): GpuInstanceProfile => ({
  name,
  id,
  slices,
  gb,
  size,
  starts,
  max,
  attribute,
});

/**
 * The seven-compute-slice, eight-memory-slot layout of A100, H100, H200 and
 * B200 (profile IDs 19, 20, 15, 14, 9, 5, 0 on every one of them): `small`
 * GB per 1g instance, `double` per 1g/2g instance with two memory slots,
 * `half` per 3g/4g, `full` per 7g.
 */
export function sevenSlice(small: number, double: number, half: number, full: number, modeSwitchResets: boolean): MigGeometry {
  return {
    slots: 8,
    vgpusPerInstance: 'one',
    modeSwitchResets,
    source: MIG_GUIDE_PROFILES,
    profiles: [
      gi(`1g.${small}gb`, 19, 1, small, 1, [0, 1, 2, 3, 4, 5, 6], 7),
      gi(`1g.${small}gb+me`, 20, 1, small, 1, [0, 1, 2, 3, 4, 5, 6], 1, 'ME'),
      gi(`1g.${double}gb`, 15, 1, double, 2, [0, 2, 4, 6], 4),
      gi(`2g.${double}gb`, 14, 2, double, 2, [0, 2, 4], 3),
      gi(`3g.${half}gb`, 9, 3, half, 4, [0, 4], 2),
      gi(`4g.${half}gb`, 5, 4, half, 4, [0], 1),
      gi(`7g.${full}gb`, 0, 7, full, 8, [0], 1),
    ],
  };
}

/**
 * RTX PRO Blackwell: `quarter` GB per 1g instance on a four-slot card (RTX PRO
 * 6000: 1g.24gb ×4, 2g.48gb ×2, 4g.96gb ×1), or two slots (RTX PRO 4500, RTX
 * 6000D). Every MIG-backed vGPU needs an instance made with the graphics
 * attribute. IDs: 47, 35, 32 on the RTX PRO 6000 (public reports); the others unknown.
 */
export function graphicsSlices(slots: 2 | 4, gbPerSlot: number, ids: readonly (number | null)[] = []): MigGeometry {
  const sizes = slots === 4 ? [1, 2, 4] : [1, 2];
  return {
    slots,
    vgpusPerInstance: 'time-sliced',
    modeSwitchResets: false,
    source: `${MIG_GUIDE_PROFILES}; placements derived from the slot count (unverified)`,
    profiles: sizes.map((n, i) =>
      gi(`${n}g.${n * gbPerSlot}gb+gfx`, ids[i] ?? null, n, n * gbPerSlot, n, Array.from({ length: slots / n }, (_, k) => k * n), slots / n, 'GFX'),
    ),
  };
}

/**
 * The GPU instance profile a MIG-backed vGPU profile of `board` needs: the
 * slice count of its name, the `+me` profile for an `ME` name, and the
 * instance whose memory its name gives (else, where vGPUs share instances,
 * the one profile of that slice count).
 */
export function instanceProfileFor(geometry: MigGeometry, profile: string): GpuInstanceProfile | undefined {
  const p = parseProfile(profile);
  if (!p || p.gpuInstanceSlices === null) return undefined;
  const wantMe = p.attribute === 'ME';
  const candidates = geometry.profiles.filter((x) => x.slices === p.gpuInstanceSlices && (x.attribute === 'ME') === wantMe);
  return candidates.find((x) => x.gb === p.framebufferGB) ?? (geometry.vgpusPerInstance === 'time-sliced' && candidates.length === 1 ? candidates[0] : undefined);
}

/** How many vGPUs of `fact` one instance of its GPU instance profile holds. */
export function vgpusPerInstance(geometry: MigGeometry, fact: Pick<ProfileFact, 'profile' | 'maxInstances'>): number {
  if (geometry.vgpusPerInstance === 'one') return 1;
  const gip = instanceProfileFor(geometry, fact.profile);
  return gip ? Math.max(1, Math.floor(fact.maxInstances / gip.max)) : 1;
}

/** An instance that exists (or is to be kept) at a fixed place. */
export interface PlacedInstance {
  profile: string;
  start: number;
}

/**
 * Starts for `wanted` beside the `fixed` instances (same order as `wanted`),
 * or null when the card cannot hold them all. Larger instances are placed
 * first, each at its lowest free start; the search backtracks, so any
 * geometry the card can hold is found (and always the same one).
 */
export function placeInstances(geometry: MigGeometry, fixed: readonly PlacedInstance[], wanted: readonly GpuInstanceProfile[]): number[] | null {
  const used = new Array<boolean>(geometry.slots).fill(false);
  const counts = new Map<string, number>();
  for (const f of fixed) {
    const prof = geometry.profiles.find((x) => x.name === f.profile);
    const size = prof?.size ?? 1;
    for (let s = f.start; s < f.start + size && s < geometry.slots; s++) used[s] = true;
    counts.set(f.profile, (counts.get(f.profile) ?? 0) + 1);
  }
  const order = wanted.map((w, i) => ({ w, i })).sort((a, b) => b.w.size - a.w.size || a.i - b.i);
  const starts = new Array<number>(wanted.length).fill(-1);
  const free = (start: number, size: number) => start + size <= geometry.slots && used.slice(start, start + size).every((u) => !u);
  const mark = (start: number, size: number, v: boolean) => used.fill(v, start, start + size);
  const search = (k: number): boolean => {
    if (k === order.length) return true;
    const { w, i } = order[k]!;
    if ((counts.get(w.name) ?? 0) >= w.max) return false;
    for (const start of w.starts) {
      if (!free(start, w.size)) continue;
      mark(start, w.size, true);
      counts.set(w.name, (counts.get(w.name) ?? 0) + 1);
      starts[i] = start;
      if (search(k + 1)) return true;
      counts.set(w.name, counts.get(w.name)! - 1);
      mark(start, w.size, false);
    }
    return false;
  };
  return search(0) ? starts : null;
}

/** `3g.40gb + 2g.20gb + 2 x 1g.10gb` for messages. */
export function describeInstances(list: readonly GpuInstanceProfile[]): string {
  const n = new Map<string, number>();
  for (const x of list) n.set(x.name, (n.get(x.name) ?? 0) + 1);
  return [...n].map(([name, c]) => (c > 1 ? `${c} x ${name}` : name)).join(' + ');
}
