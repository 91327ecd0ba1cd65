/**
 * From the devices the scheduler allocated to a claim to the hardware each
 * one will be: which GPU and profile a device name means, and which VF, mdev
 * or GPU it becomes. Targets already recorded for the claim are kept (a
 * retried Prepare lands on the same hardware); new ones never take a VF or
 * UUID another record names, even one whose vGPU is gone (after a reboot).
 */
import type { Gpu, Inventory } from '../../inventory/types.js';
import { knownProfiles } from '../../plan/facts.js';
import type { InUse } from '../../plan/types.js';
import type { ClaimRecord, PreparedDevice, Target } from './checkpoint.js';
import type { AllocatedDevice, VgpuConfig } from './claim.js';
import { freeVf } from './gpu-plan.js';
import { parseDeviceName, profileKey } from './names.js';
import { slotAddress } from './offers.js';

export class PrepareError extends Error {
  override readonly name = 'PrepareError';
}

/** An empty mdev target: the plan will choose the UUID. */
const PENDING_MDEV: Target = { kind: 'mdev', uuid: '', parent: '' };

interface Resolved {
  gpu: Gpu;
  profile: string | null;
  slot: number | null;
}

/** The GPU and profile a device name means on this node. */
function resolveDevice(inv: Inventory, name: string, draGpus: ReadonlySet<string>): Resolved {
  const ref = parseDeviceName(name);
  if (!ref) throw new PrepareError(`device ${name} is not a device of this driver (it was not published by vmgpu)`);
  const gpu = inv.gpus.find((g) => g.pci.address === ref.gpu);
  if (!gpu) throw new PrepareError(`device ${name}: GPU ${ref.gpu} is not on this node any more`);
  if (!draGpus.has(gpu.pci.address)) throw new PrepareError(`device ${name}: GPU ${ref.gpu} is not in DRA mode on this node now (its mode was switched); delete the claim's pod so the scheduler allocates another device`);
  if (ref.profileKey === null) return { gpu, profile: null, slot: null };
  const profile = knownProfiles(gpu).find((p) => profileKey(p) === ref.profileKey);
  if (!profile) throw new PrepareError(`device ${name}: ${gpu.model.name} (${ref.gpu}) offers no profile matching ${ref.profileKey}`);
  return { gpu, profile, slot: ref.slot };
}

/** VF indices every record names on a GPU (present or not): no new vGPU may take them. */
function takenVfs(records: readonly ClaimRecord[], gpu: string, except: string): Set<number> {
  const out = new Set<number>();
  for (const r of records) if (r.uid !== except) for (const d of r.devices) if (d.gpu === gpu && d.target.kind === 'vf') out.add(d.target.index);
  return out;
}

function vfTarget(g: Gpu, index: number): Target {
  const address = slotAddress(g, index);
  if (!address) throw new PrepareError(`${g.pci.address} reports no sriov_offset/sriov_stride or has no VF ${index}; cannot tell the VF's address`);
  return { kind: 'vf', address, index };
}

export interface TargetContext {
  inv: Inventory;
  records: readonly ClaimRecord[];
  claimUid: string;
  inUse: InUse;
  draGpus: ReadonlySet<string>;
  config(request: string): VgpuConfig;
}

/** The claim's devices with their targets: the recorded ones, else newly chosen. */
export function chooseTargets(ctx: TargetContext, allocated: readonly AllocatedDevice[], previous: readonly PreparedDevice[]): PreparedDevice[] {
  const byGpuTaken = new Map<string, Set<number>>();
  const out: PreparedDevice[] = [];
  for (const a of groupByDevice(allocated)) {
    const { gpu, profile, slot } = resolveDevice(ctx.inv, a.device, ctx.draGpus);
    const address = gpu.pci.address;
    const prev = previous.find((p) => p.device === a.device && p.shareId === a.shareId);
    const params = a.requests.map((r) => ctx.config(r).params).find((p) => p !== null) ?? null;
    const base = { requests: a.requests, pool: a.pool, device: a.device, shareId: a.shareId, gpu: address, profile, params };
    if (prev) {
      out.push({ ...base, target: prev.target });
      continue;
    }
    let target: Target;
    if (profile === null) target = { kind: 'whole', address };
    else if (gpu.model.vgpuFramework !== 'sriov') target = PENDING_MDEV;
    else {
      const taken = byGpuTaken.get(address) ?? takenVfs(ctx.records, address, ctx.claimUid);
      byGpuTaken.set(address, taken);
      for (const p of out) if (p.gpu === address && p.target.kind === 'vf') taken.add(p.target.index);
      const index = slot ?? freeVf(gpu, taken, ctx.inUse);
      if (index === null) throw new PrepareError(`no free VF on ${address} for ${profile}: every VF holds a vGPU of another claim or is in use`);
      if (taken.has(index)) throw new PrepareError(`device ${a.device}: VF ${index} of ${address} already holds the vGPU of another claim; the allocation is stale`);
      target = vfTarget(gpu, index);
    }
    out.push({ ...base, target });
  }
  return out;
}

/** One entry per allocated device (a device listed for several requests of the claim is one device). */
function groupByDevice(allocated: readonly AllocatedDevice[]): { device: string; pool: string; shareId: string | null; requests: string[] }[] {
  const out: { device: string; pool: string; shareId: string | null; requests: string[] }[] = [];
  for (const a of allocated) {
    const same = out.find((o) => o.device === a.device && o.shareId === a.shareId);
    if (same) same.requests.push(a.request);
    else out.push({ device: a.device, pool: a.pool, shareId: a.shareId, requests: [a.request] });
  }
  return out;
}
