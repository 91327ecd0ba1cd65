/**
 * Planning one DRA GPU through the existing planner. The driver's desired
 * state of a GPU is exactly the devices its checkpoint records there; it is
 * written as a config entry for that GPU alone ("these vGPUs on these VFs", or
 * "passed through", or "nothing") and handed to plan(), which checks it
 * against the card's capacity, keeps what matches, never touches a device in
 * use, and emits the actions the applier runs. Devices of other claims are
 * passed as in use, so no plan for one claim can remove another claim's vGPU.
 */
import type { Gpu, Inventory } from '../../inventory/types.js';
import { plan as makePlan } from '../../plan/plan.js';
import type { Action, InUse, Plan } from '../../plan/types.js';
import { defaultEntry, type ConfigEntry, type ConfigFile } from '../../spec/config.js';
import type { PreparedDevice } from './checkpoint.js';
import { slotsOf } from './offers.js';

/** The entry that describes the GPU holding exactly `devices` (all on this GPU). */
function entryFor(g: Gpu, devices: readonly PreparedDevice[], vgpuHostDriver: boolean): ConfigEntry {
  const base = { devices: 'all' as const, pciAddresses: [g.pci.address], path: `dra(${g.pci.address})` };
  if (devices.some((d) => d.profile === null)) return defaultEntry({ ...base, mode: 'passthrough' });
  if (devices.length === 0 && (!vgpuHostDriver || !g.capabilities.vgpu.usable)) return defaultEntry({ ...base, mode: 'host' });
  const counts = new Map<string, number>();
  const placement = new Map<string, number[]>();
  for (const d of devices) {
    counts.set(d.profile!, (counts.get(d.profile!) ?? 0) + 1);
    if (d.target.kind === 'vf') placement.set(d.profile!, [...(placement.get(d.profile!) ?? []), d.target.index]);
  }
  return defaultEntry({
    ...base,
    mode: 'vgpu',
    vgpuDevices: [...counts].map(([profile, count]) => ({ profile, original: profile, count })),
    vfPlacement: Object.fromEntries(placement),
  });
}

/** The plan that takes `g` to `devices`. */
export function planGpu(inv: Inventory, g: Gpu, devices: readonly PreparedDevice[], opts: { inUse: InUse; nodeId: string; vfioDriver: string }): Plan {
  const entry = entryFor(g, devices, inv.node.vgpuHostDriver);
  const file: ConfigFile = { version: 'v1', filename: `(DRA driver, GPU ${g.pci.address})`, configs: [{ name: 'dra', entries: [entry], line: 0 }] };
  return makePlan(inv, file, file.configs[0]!, { nodeId: opts.nodeId, inUse: opts.inUse, vfioDriverFor: () => opts.vfioDriver });
}

/**
 * A free VF for one more vGPU on an SR-IOV GPU: the lowest index no record
 * names, that holds no type and no VM holds. null when every VF is taken.
 */
export function freeVf(g: Gpu, taken: ReadonlySet<number>, inUse: InUse): number | null {
  const slots = slotsOf(g) ?? 0;
  for (let i = 0; i < slots; i++) {
    if (taken.has(i)) continue;
    const vf = g.vfs.find((v) => v.index === i);
    if (vf && (vf.currentTypeId !== 0 || inUse.has(vf.address))) continue;
    return i;
  }
  return null;
}

/**
 * What on a DRA GPU the checkpoint does not account for: vGPUs, or a VFIO or
 * missing driver, the driver did not make. Such a GPU is neither offered nor
 * prepared on (docs/dra.md "Switching a GPU to DRA").
 */
export function foreignOn(g: Gpu, owned: ReadonlySet<string>, ownsWhole: boolean): string[] {
  const out: string[] = [];
  for (const v of g.vfs) if (v.currentTypeId !== 0 && !owned.has(v.address)) out.push(`VF ${v.address} holds ${v.currentProfile ?? `vGPU type ${v.currentTypeId}`}`);
  for (const p of g.mdevParents) for (const i of p.instances) if (!owned.has(i.uuid)) out.push(`mdev ${i.uuid} (${i.typeName ?? i.typeDir}) on ${p.address}`);
  if (!ownsWhole && g.framework === 'passthrough') out.push(`${g.pci.address} is bound to ${g.pci.driver}`);
  if (!ownsWhole && g.pci.driver === null) out.push(`${g.pci.address} is bound to no driver`);
  return out;
}

/** The mdev UUIDs the plan creates on `g`, in plan order. */
export function createdMdevs(p: Plan, g: Gpu): { uuid: string; parent: string }[] {
  return p.actions.filter((a): a is Extract<Action, { kind: 'create-mdev' }> => a.kind === 'create-mdev' && a.gpu === g.pci.address).map((a) => ({ uuid: a.uuid, parent: a.parent }));
}
