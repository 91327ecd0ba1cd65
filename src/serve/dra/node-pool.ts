/**
 * The node's pool from what the driver knows: the inventory, which GPUs are
 * in DRA mode, the policy, the allocation model and the checkpoint. A DRA GPU
 * is offered only when the driver accounts for everything on it; one that
 * holds claims allocated from devices the pool no longer has (the policy or
 * model changed) is held back until they are released, since the scheduler
 * would not count them. A GPU that is missing or unusable is published with
 * its devices tainted, so nothing new lands on it.
 */
import type { Gpu, Inventory } from '../../inventory/types.js';
import { targetId, type ClaimRecord } from './checkpoint.js';
import { gpuDevices, poolOf, type AllocationModel, type Pool } from './devices.js';
import { foreignOn } from './gpu-plan.js';
import { offerOf, slotAddress, type GpuOffer } from './offers.js';
import type { DraPolicy } from './policy.js';

export const UNHEALTHY_TAINT = 'gpu.vmgpu.io/unhealthy';

export interface GpuStatus {
  gpu: string;
  model: string;
  /** Devices published for it (0 when held back). */
  devices: number;
  healthy: boolean;
  /** Why it offers less than everything, or nothing. */
  notes: string[];
}

export interface NodePoolInput {
  inv: Inventory;
  draGpus: ReadonlySet<string>;
  policy: DraPolicy;
  model: AllocationModel;
  records: readonly ClaimRecord[];
  pcieRoot(gpu: string): string | null;
}

/** Why a GPU is unhealthy, or null. */
function unhealthyReason(g: Gpu): string | null {
  if (g.framework === 'unusable') return g.unusableReason ?? 'the GPU is unusable';
  return null;
}

function heldBack(g: Gpu, offer: GpuOffer, input: NodePoolInput): string | null {
  const owned = new Set(input.records.flatMap((r) => r.devices.map((d) => targetId(d.target))));
  const ownsWhole = input.records.some((r) => r.devices.some((d) => d.gpu === g.pci.address && d.target.kind === 'whole'));
  const foreign = foreignOn(g, owned, ownsWhole);
  if (foreign.length) return `not offered: it holds devices the DRA driver did not make (${foreign.join('; ')}); remove them (or switch the GPU back to static mode) to offer it`;
  const names = new Set(gpuDevices(offer, input.model, () => null).info.map((i) => i.name));
  const stale = input.records.flatMap((r) => r.devices.filter((d) => d.gpu === g.pci.address && !names.has(d.device)).map((d) => `${r.namespace}/${r.name} (${d.device})`));
  if (stale.length) return `not offered: claims allocated from devices the pool no longer has still use it (${stale.join(', ')}); it is offered again once they are released`;
  return null;
}

export function nodePool(input: NodePoolInput): { pool: Pool; gpus: GpuStatus[] } {
  const offers: { offer: GpuOffer; vfOf: (slot: number) => string | null }[] = [];
  const gpus: GpuStatus[] = [];
  const unhealthy = new Set<string>();
  for (const g of input.inv.gpus) {
    if (!input.draGpus.has(g.pci.address)) continue;
    const offer = offerOf(g, input.policy, { pcieRoot: input.pcieRoot(g.pci.address) });
    const sick = unhealthyReason(g);
    const back = heldBack(g, offer, input);
    const notes = [...offer.notes, ...(sick ? [`unhealthy: ${sick}`] : []), ...(back ? [back] : [])];
    if (sick) unhealthy.add(g.pci.address);
    if (!back) offers.push({ offer, vfOf: (slot) => slotAddress(g, slot) });
    gpus.push({ gpu: g.pci.address, model: g.model.name, devices: back ? 0 : gpuDevices(offer, input.model, () => null).devices.length, healthy: !sick, notes });
  }
  const pool = poolOf(offers, input.model);
  for (const d of pool.devices) if (unhealthy.has(pool.info.get(d.name)!.gpu)) d.taints = [{ key: UNHEALTHY_TAINT, effect: 'NoSchedule' }];
  return { pool, gpus };
}
