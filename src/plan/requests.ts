/**
 * The requested vGPUs of one config entry, and the checks that need only the
 * GPU (not what is on it now): every profile is one the GPU offers, counts fit
 * the instance, VF and framebuffer limits, and the profiles may share a GPU.
 */
import { stripVendorPrefix } from '../model/profile.js';
import type { ConfigEntry } from '../spec/config.js';
import { didYouMeanOf } from '../spec/suggest.js';
import { boardFramebufferMiB, boardOf, factsFor, framebufferTaken, knownProfiles, type ProfileFacts } from './facts.js';
import type { GpuPlan } from './gpu-plan.js';
import { largestThatFits, nearestProfiles } from './suggest-profile.js';

/** One requested profile with everything the entry says about it. */
export interface VgpuRequest {
  /** Bare profile name: `L40S-12Q`. */
  profile: string;
  /** As written in the file, for messages. */
  original: string;
  count: number;
  /** `vf-placement` indices, or null. */
  placement: number[] | null;
  /** `vgpu-params`, or null. */
  params: Record<string, string> | null;
}

/** Join the entry's profile-keyed maps into one request per profile. */
export function vgpuRequestsOf(e: ConfigEntry): VgpuRequest[] {
  const byProfile = <T>(m: Record<string, T>, profile: string): T | null => {
    for (const [k, v] of Object.entries(m)) if (stripVendorPrefix(k) === profile) return v;
    return null;
  };
  return e.vgpuDevices.map((r) => ({ profile: r.profile, original: r.original, count: r.count, placement: byProfile(e.vfPlacement, r.profile), params: byProfile(e.vgpuParams, r.profile) }));
}

export interface Wanted {
  count: number;
  facts: ProfileFacts;
  /** The name as the file has it (`DC-1-24QGFX` for type `DC-1-24Q`), for messages. */
  asked: string;
}

export interface SlotLimit {
  /** How many vGPUs the GPU can hold at most (VFs, mdev parents), or Infinity. */
  slots: number;
  /** One vGPU type per GPU (mdev cards). */
  oneTypeOnly: boolean;
}

/** Profile -> count and facts, or null after recording every error on `p`. */
export function checkRequests(p: GpuPlan, limit: SlotLimit): Map<string, Wanted> | null {
  const wanted = wantedProfiles(p);
  if (!wanted) return null;
  const problems = [...countProblems(p, wanted, limit), ...mixProblems(p, [...wanted.values()], limit.oneTypeOnly)];
  for (const m of problems) p.error(m);
  return problems.length ? null : wanted;
}

function wantedProfiles(p: GpuPlan): Map<string, Wanted> | null {
  const g = p.gpu;
  const wanted = new Map<string, Wanted>();
  let ok = true;
  for (const r of p.requests) {
    const f = factsFor(g, r.profile);
    if (!f) {
      const board = g.model.profileBoard;
      const other = boardOf(g) && stripVendorPrefix(r.profile).split('-')[0] !== board;
      p.error(`${r.original} is not a vGPU profile of ${g.model.name} (${g.pci.address})${other && board ? `; its profiles start with ${board}-` : ''}.${didYouMeanOf(nearestProfiles(r.profile, offeredProfiles(g)))}`);
      ok = false;
      continue;
    }
    wanted.set(r.profile, { count: (wanted.get(r.profile)?.count ?? 0) + r.count, facts: f, asked: wanted.get(r.profile)?.asked ?? stripVendorPrefix(r.original) });
  }
  return ok ? wanted : null;
}

function countProblems(p: GpuPlan, wanted: Map<string, Wanted>, limit: SlotLimit): string[] {
  const g = p.gpu;
  const list = [...wanted.values()];
  const out: string[] = [];
  for (const w of list) {
    if (w.facts.maxInstances !== null && w.count > w.facts.maxInstances) {
      const fits = largestThatFits(w.facts, w.count, offeredProfiles(g));
      const hint = fits ? `; ${w.count} x ${fits.profile} fit (the largest ${w.facts.series} profile of which ${w.count} do)` : '';
      out.push(`${w.count} x ${w.asked} on ${g.pci.address}: at most ${w.facts.maxInstances} fit on one ${g.model.name}${hint}`);
    }
  }
  const total = list.reduce((n, w) => n + w.count, 0);
  if (total > limit.slots) out.push(`${total} vGPUs requested on ${g.pci.address} but ${g.model.name} offers ${limit.slots} ${limit.oneTypeOnly ? 'instances' : 'VFs'} (sriov_totalvfs)`);
  const fb = boardFramebufferMiB(g);
  const used = list.reduce((n, w) => n + framebufferTaken(w.facts) * w.count, 0);
  if (fb !== null && used > fb) out.push(`${list.map((w) => `${w.count} x ${w.facts.profile}`).join(' + ')} needs ${Math.round(used / 1024)} GB of framebuffer; ${g.model.name} (${g.pci.address}) has ${Math.round(fb / 1024)} GB`);
  return out;
}

/** Every profile the GPU offers, with how many fit, for suggestions. */
function offeredProfiles(g: GpuPlan['gpu']): ProfileFacts[] {
  return knownProfiles(g).flatMap((name) => factsFor(g, name) ?? []);
}

function mixProblems(p: GpuPlan, list: Wanted[], oneTypeOnly: boolean): string[] {
  if (list.length < 2) return [];
  const g = p.gpu;
  const names = list.map((w) => w.facts.profile);
  if (list.some((w) => w.facts.migBacked) && list.some((w) => !w.facts.migBacked)) return [`time-sliced and MIG-backed vGPUs cannot share a GPU (${names.join(', ')} on ${g.pci.address})`];
  if (new Set(list.map((w) => w.facts.series)).size > 1) return [`vGPUs of different series cannot share a GPU (${names.join(', ')} on ${g.pci.address}); use one of Q, B, A or C per GPU`];
  // One MIG-backed vGPU per GPU instance, of any size: the instances are the limit (mig.ts), not one type per GPU.
  if (oneTypeOnly && !list[0]!.facts.migBacked) return [`${g.model.name} (${g.pci.address}) takes one vGPU type per GPU; requested ${names.join(' and ')}`];
  if (!list[0]!.facts.migBacked && !(p.entry.mixedSizes ?? g.heterogeneousMode ?? false)) {
    return [
      `mixing ${names.join(' and ')} on ${g.pci.address} needs mixed-size vGPU mode, which is off: add \`mixed-sizes: true\` to this entry (vmgpu then runs \`nvidia-smi vgpu -shm 1\` before the first vGPU is created)`,
    ];
  }
  return [];
}
