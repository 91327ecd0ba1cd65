/**
 * Whole-GPU modes: `passthrough` (the GPU and its IOMMU group companions on a
 * VFIO driver) and `host` (everything back on its host driver, no vGPUs).
 */
import { stripVendorPrefix } from '../model/profile.js';
import type { PciFunction } from '../inventory/types.js';
import type { GpuPlan } from './gpu-plan.js';
import type { Action } from './types.js';

export function planHost(p: GpuPlan): void {
  const g = p.gpu;
  if (p.requests.length) p.error('mode host takes no vgpu-devices');
  // The GPU and its companions (audio) go back to their host drivers, also after an interrupted run left one behind.
  returnFromVfio(p);
  if (g.framework === 'passthrough' || g.pci.driver === null) return;
  for (const v of g.vfs) {
    if (v.currentTypeId === 0) continue;
    const change: Action = { kind: 'clear-vf-type', gpu: g.pci.address, vf: v.address, vfIndex: v.index, typeId: v.currentTypeId, profile: v.currentProfile };
    if (!p.blockIfInUse(v.address, change)) p.actions.push(change);
  }
  for (const parent of g.mdevParents) {
    for (const i of parent.instances) {
      const change: Action = { kind: 'remove-mdev', gpu: g.pci.address, uuid: i.uuid, parent: parent.address, profile: i.typeName ? stripVendorPrefix(i.typeName) : null };
      if (!p.blockIfInUse(i.uuid, change)) p.actions.push(change);
    }
  }
  // VFs enabled for vGPUs go too (sriov-manage's handshake where installed), so the card is as the host driver left it.
  disableVfs(p);
  // The GPU reaches the host driver only once no VM holds any of it: until then it keeps its free vGPUs.
  if (p.blocked.length) p.cannotFinish = true;
}

function disableVfs(p: GpuPlan): void {
  if (p.gpu.vfs.length === 0) return;
  const held = p.heldHere();
  if (held.length === 0) p.actions.push({ kind: 'disable-vfs', gpu: p.address });
  // A held typed VF is blocked already; a held VF without a type still keeps the VFs on.
  else if (p.blocked.length === 0) p.waitForTarget(p.address, `disable the VFs of ${p.address}`, `in use: ${held.map((d) => p.inUse.get(d)).join('; ')}`);
}

export function planPassthrough(p: GpuPlan): void {
  const g = p.gpu;
  if (p.requests.length) p.error('mode passthrough takes no vgpu-devices: the whole GPU goes to one VM');
  if (!g.capabilities.passthrough.usable) {
    p.error(`${g.model.name} (${g.pci.address}) cannot be passed through: ${g.capabilities.passthrough.reason}`);
    return;
  }
  // vGPUs on the GPU must go first; unbinding the PF takes its VFs with it.
  const vgpus = [...g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => v.address), ...g.mdevParents.flatMap((m) => m.instances.map((i) => i.uuid))];
  const held = vgpus.filter((d) => p.inUse.has(d));
  if (held.length) {
    for (const d of held) p.block(d, `pass ${g.pci.address} through`, `in use: ${p.inUse.get(d)}`, held);
    p.cannotFinish = true;
    return;
  }
  for (const m of [g.pci.address, ...g.companions]) {
    const current = functionOf(p, m)?.driver ?? null;
    const target = m === g.pci.address ? p.vfioDriver : 'vfio-pci';
    if (current === target) continue;
    const change: Action = { kind: 'bind-vfio', gpu: g.pci.address, device: m, driver: target, from: current };
    if (!p.blockIfInUse(m, change)) p.actions.push(change);
  }
}

/** Give the GPU and its companions back to their host drivers: from a VFIO driver, or from no driver at all (a bind or unbind interrupted half-way). */
export function returnFromVfio(p: GpuPlan): void {
  for (const m of [p.gpu.pci.address, ...p.gpu.companions]) {
    const fn = functionOf(p, m);
    if (!fn || (fn.driver && !/vfio/.test(fn.driver))) continue;
    const change: Action = { kind: 'unbind-vfio', gpu: p.gpu.pci.address, device: m, from: fn.driver };
    if (!p.blockIfInUse(m, change)) p.actions.push(change);
  }
}

function functionOf(p: GpuPlan, address: string): PciFunction | undefined {
  return address === p.gpu.pci.address ? p.gpu.pci : p.inv.otherFunctions.find((f) => f.address === address);
}
