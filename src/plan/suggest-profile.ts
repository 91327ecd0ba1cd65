/**
 * Profile suggestions for planner errors. A name the card does not offer gets
 * the card's profiles of the same series nearest in size (`L4-7Q` -> `L4-6Q`
 * or `L4-8Q`): a size off by one is the likelier slip than a digit, which is
 * all edit distance sees (it would offer `L4-1Q`). Too many of a profile gets
 * the largest profile of its series of which that many fit.
 */
import { parseProfile, type Profile } from '../model/profile.js';
import { closestNames } from '../spec/suggest.js';

/** What a suggestion needs to know of a profile the card offers. */
export interface OfferedProfile {
  profile: string;
  maxInstances: number | null;
}

/** Offered profiles of the same kind as `asked`: series, MIG-backed or not, and MIG attribute. */
function sameKind(asked: Profile, offered: readonly OfferedProfile[]): { o: OfferedProfile; p: Profile }[] {
  const out: { o: OfferedProfile; p: Profile }[] = [];
  for (const o of offered) {
    const p = parseProfile(o.profile);
    if (!p || p.series !== asked.series || (p.gpuInstanceSlices === null) !== (asked.gpuInstanceSlices === null) || p.attribute !== asked.attribute) continue;
    out.push({ o, p });
  }
  return out;
}

/**
 * Up to three offered profiles for `asked`: one of the same size (another
 * board's name), the nearest smaller and the nearest larger, all of its
 * series. Without a profile of that series, the closest spellings.
 */
export function nearestProfiles(asked: string, offered: readonly OfferedProfile[]): string[] {
  const a = parseProfile(asked);
  const kin = a ? sameKind(a, offered) : [];
  if (!a || kin.length === 0) return closestNames(asked, offered.map((o) => o.profile));
  const gb = a.framebufferGB;
  const pick = (ok: (x: number) => boolean, better: (x: number, y: number) => boolean): string[] => {
    let best: { o: OfferedProfile; p: Profile } | undefined;
    for (const k of kin) if (ok(k.p.framebufferGB) && (!best || better(k.p.framebufferGB, best.p.framebufferGB))) best = k;
    return best ? [best.o.profile] : [];
  };
  return [
    ...pick((x) => x === gb, () => false),
    ...pick((x) => x < gb, (x, y) => x > y),
    ...pick((x) => x > gb, (x, y) => x < y),
  ];
}

/**
 * The largest offered profile of `asked`'s kind of which `count` fit on one
 * GPU (of two alike in size, the one with more GPU instance slices); null when none.
 */
export function largestThatFits(asked: OfferedProfile, count: number, offered: readonly OfferedProfile[]): OfferedProfile | null {
  const a = parseProfile(asked.profile);
  if (!a) return null;
  let best: { o: OfferedProfile; p: Profile } | null = null;
  for (const k of sameKind(a, offered)) {
    if (k.o.maxInstances === null || k.o.maxInstances < count) continue;
    const slices = (p: Profile): number => p.gpuInstanceSlices ?? 0;
    if (!best || k.p.framebufferGB > best.p.framebufferGB || (k.p.framebufferGB === best.p.framebufferGB && slices(k.p) > slices(best.p))) best = k;
  }
  return best?.o ?? null;
}
