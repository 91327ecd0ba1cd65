/**
 * SR-IOV vGPU (Ada, Hopper, Blackwell): each vGPU is a VF with a type.
 *
 * Placement runs as named passes over the VFs (or the VFs-to-be, when SR-IOV
 * is still off): VFs in use keep what they have, explicit `vf-placement`
 * next, then VFs that already match stay, then the rest on the lowest free
 * VFs. `emit` turns the result into actions, checked against one capacity
 * rule (capacity.ts) for what stays on the card.
 */
import { vfAddress } from '../model/pci.js';
import { Occupancy } from './capacity.js';
import { boardFramebufferMiB, factsFor } from './facts.js';
import type { GpuPlan } from './gpu-plan.js';
import { formatParams } from './params.js';
import { checkRequests, type Wanted } from './requests.js';
import type { Action } from './types.js';

/** A VF (or a VF-to-be) during placement. */
interface Slot {
  index: number;
  address: string;
  /** What it holds now (null: nothing, or a type vmgpu cannot name). */
  profile: string | null;
  typeId: number;
  params: string | null;
  held: boolean;
  /** Named by vf-placement. */
  placed: boolean;
  /** What it will hold. */
  target: string | null;
  /** It holds `target` already. */
  kept: boolean;
}

type Remaining = Map<string, number>;

export function planSriov(p: GpuPlan): void {
  const sriov = p.gpu.pci.sriov;
  if (!sriov) return p.error(`${p.address} exposes no SR-IOV capability (sriov_totalvfs is missing)`);
  const wanted = checkRequests(p, { slots: sriov.totalVfs, oneTypeOnly: false });
  if (!wanted || !placementInRange(p, sriov.totalVfs)) return;
  const slots = slotsOf(p);
  if (!slots) return;
  const requested = [...wanted.values()].reduce((n, w) => n + w.count, 0);
  if (p.gpu.vfs.length > 0 && requested > slots.length) {
    return p.error(`${requested} vGPUs requested but only ${slots.length} of ${sriov.totalVfs} VFs are enabled on ${p.address}; disable the VFs (write 0 to sriov_numvfs) so vmgpu can enable all of them`);
  }
  const switching = switchesMixedSizeMode(p, slots);
  if (switching === 'undetermined' || switching === 'waits') return;
  const remaining: Remaining = new Map([...wanted].map(([profile, w]) => [profile, w.count]));
  // A mode switch needs an empty GPU: then nothing is kept, every vGPU is rebuilt.
  const keep = !switching;
  if (keep) keepHeld(slots, remaining);
  placeExplicit(p, slots, remaining, keep);
  if (keep) keepMatching(slots, remaining);
  fillLowestFree(p, slots, wanted, remaining);
  emit(p, slots, wanted);
}

/**
 * Whether the entry switches the GPU's mixed-size mode while it has VFs (the
 * driver takes the switch only on an empty GPU). A vGPU a VM holds makes the
 * switch wait; a mode vmgpu cannot read (no nvidia-smi) is not guessed.
 */
function switchesMixedSizeMode(p: GpuPlan, slots: Slot[]): boolean | 'waits' | 'undetermined' {
  const want = p.entry.mixedSizes;
  if (want === null || p.gpu.vfs.length === 0) return false;
  const configured = slots.filter((s) => s.typeId !== 0);
  if (p.gpu.heterogeneousMode === null) {
    if (configured.length === 0) return false;
    p.undetermine(p.address, `the entry sets mixed-sizes: ${want}, but the mixed-size vGPU mode of ${p.address} cannot be read`, 'make the host driver\'s nvidia-smi reachable to vmgpu (the mode is read with nvidia-smi -q)');
    return 'undetermined';
  }
  if (want === p.gpu.heterogeneousMode || configured.length === 0) return false;
  const held = configured.filter((s) => s.held);
  for (const s of held) p.waitForTarget(s.address, `switch mixed-size mode ${want ? 'on' : 'off'} on ${p.address}`, `the switch needs every vGPU on the GPU cleared; in use: ${p.inUse.get(s.address)}`);
  return held.length ? 'waits' : true;
}

function placementInRange(p: GpuPlan, total: number): boolean {
  let ok = true;
  for (const r of p.requests) {
    for (const i of r.placement ?? []) {
      if (i < total) continue;
      p.error(`vf-placement: VF index ${i} is out of range; ${p.gpu.model.name} has VFs 0-${total - 1}`);
      ok = false;
    }
  }
  return ok;
}

/** The VFs as they are, or as they will be once enabled. */
function slotsOf(p: GpuPlan): Slot[] | null {
  const placed = new Set(p.requests.flatMap((r) => r.placement ?? []));
  const slot = (index: number, address: string, profile: string | null, typeId: number, params: string | null): Slot => ({ index, address, profile, typeId, params, held: p.inUse.has(address), placed: placed.has(index), target: null, kept: false });
  if (p.gpu.vfs.length > 0) return p.gpu.vfs.map((v) => slot(v.index, v.address, v.currentProfile, v.currentTypeId, v.vgpuParams));
  const sriov = p.gpu.pci.sriov!;
  if (sriov.offset === null || sriov.stride === null) {
    p.error(`${p.address} reports no sriov_offset/sriov_stride; cannot tell its VF addresses`);
    return null;
  }
  return Array.from({ length: sriov.totalVfs }, (_, i) => slot(i, vfAddress(p.address, sriov.offset!, sriov.stride!, i), null, 0, null));
}

function take(remaining: Remaining, s: Slot, profile: string, kept: boolean): void {
  s.target = profile;
  s.kept = kept;
  remaining.set(profile, (remaining.get(profile) ?? 0) - 1);
}

/** 1. VFs in use keep what they have, when the config still asks for it. */
function keepHeld(slots: Slot[], remaining: Remaining): void {
  for (const s of slots) {
    if (s.held && s.typeId !== 0 && s.profile && (remaining.get(s.profile) ?? 0) > 0) take(remaining, s, s.profile, true);
  }
}

/** 2. vf-placement: the named VFs, unless a VM holds one with another type. */
function placeExplicit(p: GpuPlan, slots: Slot[], remaining: Remaining, keep: boolean): void {
  for (const r of p.requests) {
    for (const i of r.placement ?? []) {
      const s = slots[i]!;
      if (s.target !== null) continue; // an in-use VF already keeps this profile
      if (s.held && s.typeId !== 0 && s.profile !== r.profile) {
        p.waitForTarget(s.address, `set VF ${s.address} to ${r.profile} (vf-placement)`, `in use: ${p.inUse.get(s.address)}`);
        continue;
      }
      take(remaining, s, r.profile, keep && s.profile === r.profile && s.typeId !== 0);
    }
  }
}

/** 3. VFs that already hold a requested profile stay as they are. */
function keepMatching(slots: Slot[], remaining: Remaining): void {
  for (const s of slots) {
    if (s.target !== null || s.typeId === 0 || !s.profile || s.held || s.placed) continue;
    if ((remaining.get(s.profile) ?? 0) > 0) take(remaining, s, s.profile, true);
  }
}

/** 4. The rest on the lowest free VFs, then on VFs that will be cleared. */
function fillLowestFree(p: GpuPlan, slots: Slot[], wanted: Map<string, Wanted>, remaining: Remaining): void {
  const candidates = slots.filter((s) => s.target === null && !s.held && !s.placed).sort((a, b) => Number(a.typeId !== 0) - Number(b.typeId !== 0) || a.index - b.index);
  for (const [profile] of wanted) {
    while ((remaining.get(profile) ?? 0) > 0) {
      const s = candidates.shift();
      if (!s) break;
      take(remaining, s, profile, false);
    }
  }
  for (const [profile, left] of remaining) {
    if (left > 0) p.waitForTarget(p.address, `create ${left} more ${profile}`, 'no free VF: the others are in use by VMs');
  }
}

/** What stays on the card whatever happens: VFs in use, and kept VFs. */
function occupancyOf(p: GpuPlan, slots: Slot[], wanted: Map<string, Wanted>, mixed: boolean): Occupancy {
  const occ = new Occupancy({ framebufferMiB: boardFramebufferMiB(p.gpu), oneProfile: !mixed, instanceLimit: 'per-profile' });
  for (const s of slots) {
    if (s.held && s.typeId !== 0) {
      const f = s.profile ? factsFor(p.gpu, s.profile) : undefined;
      if (f) occ.add(f);
    } else if (s.kept && s.target) occ.add(wanted.get(s.target)!.facts);
  }
  return occ;
}

/** Actions in the order the driver needs them: enable VFs, clear, mixed-size mode, set types, params. */
function emit(p: GpuPlan, slots: Slot[], wanted: Map<string, Wanted>): void {
  const mixed = p.entry.mixedSizes ?? p.gpu.heterogeneousMode ?? false;
  const occ = occupancyOf(p, slots, wanted, mixed);
  const paramsOf = (profile: string) => formatParams(p.requests.find((r) => r.profile === profile)?.params ?? undefined);
  const clears: Action[] = [];
  const sets: Action[] = [];
  const params: Action[] = [];
  for (const s of slots) {
    const want = s.target ? paramsOf(s.target) : null;
    if (s.kept) {
      p.outcome.kept++;
      if (want !== null && (s.params ?? '') !== want) {
        const change: Action = { kind: 'set-vf-params', gpu: p.address, vf: s.address, params: want };
        if (!p.blockIfInUse(s.address, change)) params.push(change);
      }
      continue;
    }
    if (s.typeId !== 0) {
      const change: Action = { kind: 'clear-vf-type', gpu: p.address, vf: s.address, vfIndex: s.index, typeId: s.typeId, profile: s.profile };
      if (p.blockIfInUse(s.address, change)) continue;
      clears.push(change);
    }
    if (!s.target) continue;
    const f = wanted.get(s.target)!.facts;
    const why = occ.whyNot(f);
    if (why) {
      p.waitForTarget(s.address, `set VF ${s.address} to ${s.target}`, `waits for in-use vGPUs to be released: ${why}`);
      continue;
    }
    occ.add(f);
    sets.push({ kind: 'set-vf-type', gpu: p.address, vf: s.address, vfIndex: s.index, profile: s.target });
    if (want !== null && want !== (s.params ?? '')) params.push({ kind: 'set-vf-params', gpu: p.address, vf: s.address, params: want });
  }
  const enabled = p.gpu.vfs.length > 0;
  if (!enabled && sets.length) p.actions.push({ kind: 'enable-vfs', gpu: p.address, count: p.gpu.pci.sriov!.totalVfs });
  p.actions.push(...clears);
  const mode = mixedSizeAction(p, enabled, sets.length > 0);
  if (mode) p.actions.push(mode);
  p.actions.push(...sets, ...params);
}

/**
 * The mixed-size mode action, when the entry asks for a mode the GPU is not
 * in, or enabling VFs will reset it (sriov-manage does). A switch on a GPU
 * with vGPUs was decided by switchesMixedSizeMode: by now nothing stays.
 */
function mixedSizeAction(p: GpuPlan, enabled: boolean, creating: boolean): Action | null {
  const want = p.entry.mixedSizes;
  // With the VFs off and staying off there is no mode to set: enabling them later resets it anyway.
  if (want === null || (!enabled && !creating)) return null;
  const enablingResets = !enabled && creating;
  if (want === (p.gpu.heterogeneousMode ?? false) && !(enablingResets && want)) return null;
  return { kind: 'set-mixed-sizes', gpu: p.address, enabled: want };
}
