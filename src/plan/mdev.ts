/**
 * mdev vGPU (Pascal to Ampere): each vGPU is an mdev instance on the GPU (or,
 * on Ampere, on one of its VFs). Instances that match stay with their UUIDs;
 * new ones get stable UUIDs (the same node, parent and slot give the same
 * UUID, so a VM keeps its vGPU across reboots).
 */
import { stripVendorPrefix } from '../model/profile.js';
import type { MdevInstance } from '../inventory/types.js';
import { vfAddress } from '../model/pci.js';
import { Occupancy } from './capacity.js';
import { boardFramebufferMiB, boardOf, factsFor } from './facts.js';
import type { GpuPlan } from './gpu-plan.js';
import { formatParams } from './params.js';
import { checkRequests, type Wanted } from './requests.js';
import { stableMdevUuid } from './uuid.js';
import type { Action } from './types.js';

type Instance = MdevInstance & { profile: string | null };

/** Where mdevs can live: the PF, or the VFs (now, or once enabled). */
interface Parents {
  addresses: string[];
  onVfs: boolean;
  /** VFs must be enabled before the first create. */
  enable: boolean;
}

export function planMdev(p: GpuPlan): void {
  const parents = parentsOf(p);
  if (!parents) return;
  const wanted = checkRequests(p, { slots: parents.onVfs ? parents.addresses.length : Number.MAX_SAFE_INTEGER, oneTypeOnly: true });
  if (!wanted) return;
  if (p.requests.some((r) => r.placement)) p.error('vf-placement applies to SR-IOV vGPU GPUs only');
  if (p.entry.mixedSizes) p.error('mixed-sizes applies to SR-IOV vGPU GPUs only');
  const instances = p.gpu.mdevParents.flatMap((m) => m.instances.map((i) => ({ ...i, profile: i.typeName ? stripVendorPrefix(i.typeName) : null })));
  const keep = chooseKept(p, instances, wanted);
  const occ = new Occupancy({ framebufferMiB: boardFramebufferMiB(p.gpu), oneProfile: true, instanceLimit: 'all' });
  const removes = removals(p, instances, keep, wanted, occ);
  const creates = creations(p, parents, instances, keep, wanted, occ);
  if (parents.enable && creates.length) p.actions.push({ kind: 'enable-vfs', gpu: p.address, count: p.gpu.pci.sriov!.totalVfs });
  p.actions.push(...removes, ...creates);
}

function parentsOf(p: GpuPlan): Parents | null {
  const g = p.gpu;
  const onVfs = boardOf(g)?.mdevOnVfs ?? g.pci.sriov !== null;
  if (!onVfs) return { addresses: [g.pci.address], onVfs, enable: false };
  const sriov = g.pci.sriov;
  if (!sriov) {
    p.error(`${p.address} should host mdevs on SR-IOV VFs but exposes no SR-IOV capability`);
    return null;
  }
  if (sriov.vfs.length) return { addresses: sriov.vfs, onVfs, enable: false };
  if (sriov.offset === null || sriov.stride === null) {
    p.error(`${p.address} reports no sriov_offset/sriov_stride; cannot tell its VF addresses`);
    return null;
  }
  return { addresses: Array.from({ length: sriov.totalVfs }, (_, i) => vfAddress(p.address, sriov.offset!, sriov.stride!, i)), onVfs, enable: true };
}

/** Instances that stay: in-use ones first, then the others, each in a stable order, up to the requested counts. */
function chooseKept(p: GpuPlan, instances: Instance[], wanted: Map<string, Wanted>): Set<string> {
  const remaining = new Map([...wanted].map(([profile, w]) => [profile, w.count]));
  const keep = new Set<string>();
  const held = (i: Instance) => Number(p.inUse.has(i.uuid));
  for (const i of [...instances].sort((a, b) => held(b) - held(a) || a.parent.localeCompare(b.parent) || a.uuid.localeCompare(b.uuid))) {
    const left = i.profile ? (remaining.get(i.profile) ?? 0) : 0;
    if (left > 0) {
      keep.add(i.uuid);
      remaining.set(i.profile!, left - 1);
    }
  }
  return keep;
}

/** Remove what is not kept (unless a VM holds it); kept and held instances occupy the GPU. */
function removals(p: GpuPlan, instances: Instance[], keep: Set<string>, wanted: Map<string, Wanted>, occ: Occupancy): Action[] {
  const out: Action[] = [];
  for (const i of instances) {
    if (keep.has(i.uuid)) {
      p.outcome.kept++;
      occ.add(wanted.get(i.profile!)!.facts);
      const want = formatParams(p.requests.find((r) => r.profile === i.profile)?.params ?? undefined);
      if (want !== null && (i.vgpuParams ?? '') !== want) {
        const change: Action = { kind: 'set-mdev-params', gpu: p.address, uuid: i.uuid, params: want };
        if (!p.blockIfInUse(i.uuid, change)) p.actions.push(change);
      }
      continue;
    }
    const change: Action = { kind: 'remove-mdev', gpu: p.address, uuid: i.uuid, parent: i.parent, profile: i.profile };
    if (p.blockIfInUse(i.uuid, change)) {
      const f = i.profile ? factsFor(p.gpu, i.profile) : undefined;
      if (f) occ.add(f);
      continue;
    }
    out.push(change);
  }
  return out;
}

function creations(p: GpuPlan, parents: Parents, instances: Instance[], keep: Set<string>, wanted: Map<string, Wanted>, occ: Occupancy): Action[] {
  const stays = instances.filter((i) => keep.has(i.uuid) || p.inUse.has(i.uuid));
  const usedUuids = new Set(stays.map((i) => i.uuid));
  const busy = new Set(stays.map((i) => i.parent));
  const freeParents = parents.addresses.filter((a) => !busy.has(a));
  const remaining = new Map([...wanted].map(([profile, w]) => [profile, w.count - instances.filter((i) => keep.has(i.uuid) && i.profile === profile).length]));
  const out: Action[] = [];
  for (const [profile, count] of remaining) {
    const f = wanted.get(profile)!.facts;
    const params = formatParams(p.requests.find((r) => r.profile === profile)?.params ?? undefined);
    let slot = 0;
    for (let left = count; left > 0; left--) {
      const why = occ.whyNot(f);
      if (why) {
        p.waitForTarget(p.address, `create ${left} x ${profile}`, `waits for in-use vGPUs to be released: ${why}`);
        break;
      }
      let parent = parents.addresses[0]!;
      if (parents.onVfs) {
        const next = freeParents.shift();
        if (!next) {
          p.waitForTarget(p.address, `create ${left} more ${profile}`, 'no free mdev parent VF: the others hold vGPUs in use by VMs');
          break;
        }
        parent = next;
        slot = 0;
      }
      let uuid = stableMdevUuid(p.nodeId, parent, slot);
      while (usedUuids.has(uuid)) uuid = stableMdevUuid(p.nodeId, parent, ++slot);
      usedUuids.add(uuid);
      occ.add(f);
      out.push({ kind: 'create-mdev', gpu: p.address, uuid, parent, profile });
      if (params !== null) out.push({ kind: 'set-mdev-params', gpu: p.address, uuid, params });
    }
  }
  return out;
}
