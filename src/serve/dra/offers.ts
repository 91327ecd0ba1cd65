/**
 * What one GPU can offer through DRA, from the inventory, NVIDIA's board
 * facts and the policy: its vGPU profiles (each with the most instances one
 * GPU holds of it, capped by VFs and framebuffer), the whole GPU for
 * passthrough, and the size of its counters. Pure; devices.ts turns offers
 * into ResourceSlice devices.
 */
import type { Gpu } from '../../inventory/types.js';
import { vfAddress } from '../../model/pci.js';
import { parseProfile } from '../../model/profile.js';
import { boardFramebufferMiB, boardOf, factsFor, knownProfiles } from '../../plan/facts.js';
import { selectProfiles, type Candidate, type DraPolicy } from './policy.js';

export interface ProfileOffer {
  profile: string;
  series: string;
  migBacked: boolean;
  framebufferMiB: number;
  /** GPU-instance slices of a MIG-backed profile; null for time-sliced ones. */
  migSlices: number | null;
  /** How many of this profile one GPU holds (homogeneous), within VFs and framebuffer. */
  instances: number;
}

export interface GpuOffer {
  address: string;
  index: number;
  model: string;
  framework: 'sriov' | 'mdev';
  profiles: ProfileOffer[];
  /** The whole GPU is offered for passthrough. */
  whole: boolean;
  /** The GPU's counters: framebuffer, vGPU slots, MIG slices (when a MIG-backed profile is offered). */
  counters: { framebufferMiB: number; vgpus: number; migSlices: number | null };
  pcieRoot: string | null;
  numaNode: number | null;
  /** Why a profile or the whole GPU is not offered, for the driver's status. */
  notes: string[];
}

/** GPU-instance slices of a MIG-capable GPU (A100, H100, H200 all have 7). */
const MIG_SLICES = 7;

/** vGPU slots: VFs on SR-IOV cards and Ampere mdev-on-VF cards; unbounded (null) for mdev on the PF. */
export function slotsOf(g: Gpu): number | null {
  const board = boardOf(g);
  const onVfs = g.model.vgpuFramework === 'sriov' || (board?.mdevOnVfs ?? false);
  return onVfs ? (g.pci.sriov?.totalVfs ?? board?.maxVfs ?? 0) : null;
}

/** The VF a vGPU slot maps to (SR-IOV cards): the enabled VF, or the one sriov_offset/stride say it will be. */
export function slotAddress(g: Gpu, slot: number): string | null {
  if (g.model.vgpuFramework !== 'sriov') return null;
  const vf = g.vfs.find((v) => v.index === slot);
  if (vf) return vf.address;
  const s = g.pci.sriov;
  return s && s.offset !== null && s.stride !== null && slot < s.totalVfs ? vfAddress(g.pci.address, s.offset, s.stride, slot) : null;
}

function candidates(g: Gpu, fbMiB: number, slots: number | null): Candidate[] {
  // The driver's catalog, when it lists anything, is what this card and driver version really offer.
  const listed = new Set(g.catalog.map((t) => t.profile));
  const out: Candidate[] = [];
  for (const profile of knownProfiles(g)) {
    const f = factsFor(g, profile);
    if (!f || f.maxInstances === null || f.framebufferMiB === null || f.framebufferMiB <= 0 || f.series === 'unknown') continue;
    if (listed.size > 0 && !listed.has(profile)) continue;
    const max = Math.min(f.maxInstances, slots ?? f.maxInstances, Math.floor(fbMiB / f.framebufferMiB));
    if (max > 0) out.push({ profile, series: f.series, migBacked: f.migBacked, maxInstances: max });
  }
  return out;
}

export function offerOf(g: Gpu, policy: DraPolicy, topology: { pcieRoot: string | null }): GpuOffer {
  const notes: string[] = [];
  const framework = g.model.vgpuFramework === 'sriov' || g.model.vgpuFramework === 'mdev' ? g.model.vgpuFramework : null;
  const fbMiB = boardFramebufferMiB(g);
  const slots = slotsOf(g);
  let profiles: ProfileOffer[] = [];
  if (!framework || fbMiB === null) notes.push(`${g.model.name} is not a vGPU board vmgpu knows: no vGPU profiles offered`);
  else if (!g.capabilities.vgpu.usable) notes.push(`no vGPU profiles offered: ${g.capabilities.vgpu.reason}`);
  else {
    profiles = selectProfiles(policy, candidates(g, fbMiB, slots)).map((c) => {
      const f = factsFor(g, c.profile)!;
      return { profile: c.profile, series: c.series, migBacked: c.migBacked, framebufferMiB: f.framebufferMiB!, migSlices: parseProfile(c.profile)?.gpuInstanceSlices ?? null, instances: c.maxInstances };
    });
    if (profiles.length === 0) notes.push(`the policy lets none of the ${g.model.name}'s profiles through`);
  }
  const whole = policy.passthrough && g.capabilities.passthrough.usable;
  if (policy.passthrough && !whole) notes.push(`the whole GPU is not offered: ${g.capabilities.passthrough.reason}`);
  const vgpus = Math.max(slots ?? 0, ...profiles.map((p) => p.instances), 1);
  return {
    address: g.pci.address,
    index: g.index,
    model: g.model.name,
    framework: framework ?? 'sriov',
    profiles,
    whole,
    counters: { framebufferMiB: fbMiB ?? 0, vgpus, migSlices: profiles.some((p) => p.migBacked) ? MIG_SLICES : null },
    pcieRoot: topology.pcieRoot,
    numaNode: g.pci.numaNode >= 0 ? g.pci.numaNode : null,
    notes,
  };
}
