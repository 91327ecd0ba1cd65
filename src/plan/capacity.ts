/**
 * One capacity rule for a GPU, used by SR-IOV and mdev planning alike: what
 * already occupies the card (vGPUs that stay, in use or kept) and whether one
 * more vGPU of a profile fits beside them. The request checks (requests.ts)
 * apply the same limits to the whole request before anything is placed.
 */
import { framebufferTaken, type ProfileFacts } from './facts.js';

export interface OccupancyRules {
  /** Total vGPU framebuffer of the board; null when unknown (no framebuffer check). */
  framebufferMiB: number | null;
  /** Only one time-sliced profile on the GPU (mdev cards, SR-IOV cards not in mixed-size mode). */
  oneProfile: boolean;
  /**
   * How the instance limit counts: `per-profile` counts instances of the same
   * profile (SR-IOV: each VF one vGPU), `all` counts every vGPU on the GPU (mdev).
   */
  instanceLimit: 'per-profile' | 'all';
}

export class Occupancy {
  private readonly present: ProfileFacts[] = [];

  constructor(private readonly rules: OccupancyRules) {}

  add(f: ProfileFacts): void {
    this.present.push(f);
  }

  /** Why one more `f` cannot go on the GPU now, or null when it fits. */
  whyNot(f: ProfileFacts): string | null {
    const on = this.present;
    if (on.some((o) => o.migBacked !== f.migBacked)) return 'time-sliced and MIG-backed vGPUs cannot share the GPU';
    const other = on.find((o) => o.profile !== f.profile);
    if (this.rules.oneProfile && other) return this.rules.instanceLimit === 'all' ? `the GPU keeps ${other.profile}` : `the GPU keeps ${other.profile} and is not in mixed-size mode`;
    const otherSeries = on.find((o) => o.series !== f.series);
    if (otherSeries) return `the GPU keeps a ${otherSeries.profile}`;
    const counted = this.rules.instanceLimit === 'all' ? on.length : on.filter((o) => o.profile === f.profile).length;
    if (f.maxInstances !== null && counted >= f.maxInstances) return `${f.maxInstances} x ${f.profile} already there`;
    const used = on.reduce((n, o) => n + framebufferTaken(o), 0);
    if (this.rules.framebufferMiB !== null && used + framebufferTaken(f) > this.rules.framebufferMiB) return 'not enough framebuffer left';
    return null;
  }
}
