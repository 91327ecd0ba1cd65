/**
 * Taking DRA GPUs to what the checkpoint says, through the planner and the
 * applier: for each GPU a plan whose desired state is the devices recorded
 * there (those of other claims only when they exist now: a vGPU lost in a
 * reboot is remade by its own claim's Prepare), with other claims' devices,
 * devices VMs hold and (when removing) devices of others passed as in use,
 * so a plan can only add or remove the devices of the claim at hand.
 */
import { applyPlan } from '../../apply/apply.js';
import type { Gpu, Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import { mergeInUse } from '../../machine/in-use.js';
import type { InUse, Plan } from '../../plan/types.js';
import { targetId, type ClaimRecord, type PreparedDevice, type Target } from './checkpoint.js';
import { foreignOn, planGpu } from './gpu-plan.js';
import { PrepareError } from './resolve.js';

/** Whether a target exists on the node now (with the profile it should have). */
export function present(g: Gpu, t: Target, profile: string | null): boolean {
  if (t.kind === 'vf') return g.vfs.some((v) => v.address === t.address && v.currentTypeId !== 0 && (profile === null || v.currentProfile === profile));
  if (t.kind === 'mdev') return t.uuid !== '' && g.mdevParents.some((p) => p.instances.some((i) => i.uuid === t.uuid));
  return g.framework === 'passthrough';
}

/** Devices of other records on `gpu` that exist now, with the claim each is prepared for. */
export function othersOn(inv: Inventory, records: readonly ClaimRecord[], gpu: string, except: string): { devices: PreparedDevice[]; inUse: Map<string, string> } {
  const g = inv.gpus.find((x) => x.pci.address === gpu);
  const devices: PreparedDevice[] = [];
  const inUse = new Map<string, string>();
  for (const r of records) {
    if (r.uid === except) continue;
    for (const d of r.devices) {
      if (d.gpu !== gpu || !g || !present(g, d.target, d.profile)) continue;
      devices.push(d);
      inUse.set(targetId(d.target), `prepared for ResourceClaim ${r.namespace}/${r.name} by the DRA driver`);
    }
  }
  return { devices, inUse };
}

export interface GpuChange {
  gpu: Gpu;
  /** Everything that should be on the GPU afterwards. */
  desired: PreparedDevice[];
  /** Devices the plan must not touch, with why. */
  inUse: InUse;
}

/** The GPU's plan; refuses (PrepareError) when it cannot be met now. `mine`: targets of the claim at hand. */
export function planChange(inv: Inventory, c: GpuChange, opts: { nodeId: string; vfioDriver: string; mine: ReadonlySet<string>; what: string }): Plan {
  const p = planGpu(inv, c.gpu, c.desired, { inUse: c.inUse, nodeId: opts.nodeId, vfioDriver: opts.vfioDriver });
  const where = `${opts.what} on ${c.gpu.pci.address} (${c.gpu.model.name})`;
  if (p.errors.length) throw new PrepareError(`${where} is refused: ${p.errors.map((e) => e.message).join('; ')}`);
  if (p.undetermined.length) throw new PrepareError(`${where} is refused: ${p.undetermined.map((u) => `${u.reason} (${u.fix})`).join('; ')}`);
  // Devices of others and of other claims are blocked on purpose; a blocked change to the claim's own device is not.
  const blocked = p.blocked.filter((b) => opts.mine.has(b.device) || b.device === c.gpu.pci.address);
  if (blocked.length) throw new PrepareError(`${where} waits: ${blocked.map((b) => `${b.change}: ${b.reason}`).join('; ')}`);
  return p;
}

/** Run the plans under the node's writer lock; persist the simulated node. Throws PrepareError with the applier's words. */
export async function applyChanges(machine: Machine, plans: readonly Plan[], command: string, lockWaitMs: number): Promise<number> {
  if (plans.every((p) => p.actions.length === 0)) return 0;
  const lock = await machine.lock({ command, waitMs: lockWaitMs });
  let writes = 0;
  try {
    for (const p of plans) {
      const r = await applyPlan(p, { port: machine.port, tools: machine.tools });
      writes += r.writes;
      if (r.failure) throw new PrepareError(`writing the GPU failed: ${r.failure.message}`);
      const blocked = r.blocked.filter((b) => !p.blocked.includes(b));
      if (blocked.length) throw new PrepareError(`a VM took a device meanwhile: ${blocked.map((b) => `${b.change}: ${b.reason}`).join('; ')}`);
    }
  } finally {
    machine.commit();
    lock.release();
  }
  return writes;
}

/** In-use for removing the claim's devices: VMs, other claims, and whatever is on the GPU that the driver did not make. */
export function removalInUse(machine: Machine, inv: Inventory, g: Gpu, records: readonly ClaimRecord[], others: Map<string, string>): InUse {
  const owned = new Set(records.flatMap((r) => r.devices.map((d) => targetId(d.target))));
  const ownsWhole = records.some((r) => r.devices.some((d) => d.gpu === g.pci.address && d.target.kind === 'whole'));
  const foreign = new Map<string, string>();
  for (const v of g.vfs) if (v.currentTypeId !== 0 && !owned.has(v.address)) foreign.set(v.address, 'not made by the DRA driver');
  for (const p of g.mdevParents) for (const i of p.instances) if (!owned.has(i.uuid)) foreign.set(i.uuid, 'not made by the DRA driver');
  if (!ownsWhole && foreignOn(g, owned, false).some((f) => f.startsWith(g.pci.address))) foreign.set(g.pci.address, 'not made by the DRA driver');
  return mergeInUse(machine.inUse(inv), others, foreign);
}

