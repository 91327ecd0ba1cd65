/**
 * The planner: a pure function (inventory, config, in-use set) -> Plan.
 *
 * Minimal diff: every vGPU that already matches stays; nothing is deleted to
 * be recreated. Placement is deterministic (explicit placement first, then
 * existing matches, then the lowest free function). The whole desired state
 * is checked against capacity before anything is planned, so a plan with
 * errors is never applied. Devices in use by VMs are never touched: the
 * changes they would need are reported as blocked.
 *
 * This file assigns GPUs to config entries and dispatches each GPU to its
 * mode: sriov.ts, mdev.ts, passthrough.ts (passthrough and host).
 */
import type { Gpu, Inventory } from '../inventory/types.js';
import type { ConfigFile, NamedConfig } from '../spec/config.js';
import { assignGpus, gpuIdentity } from '../spec/match.js';
import { boardOf, offersEntry } from './facts.js';
import { GpuPlan } from './gpu-plan.js';
import { planMdev } from './mdev.js';
import { planHost, planPassthrough, returnFromVfio } from './passthrough.js';
import { checkRequests } from './requests.js';
import { planSriov } from './sriov.js';
import type { GpuOutcome, InUse, Plan } from './types.js';

;
export { stableMdevUuid } from './uuid.js';

export interface PlanOptions {
  /** Node identity (Kubernetes node name or host name): part of every mdev UUID vmgpu creates. */
  nodeId: string;
  /** Devices in use by VMs (address or mdev UUID -> who holds it). */
  inUse?: InUse;
  /** The VFIO driver for a GPU's passthrough (a vendor variant from modules.alias, else vfio-pci). */
  vfioDriverFor?: (gpu: Gpu) => string;
}

export function plan(inv: Inventory, file: ConfigFile, config: NamedConfig, opts: PlanOptions): Plan {
  const out: Plan = { configName: config.name, actions: [], blocked: [], undetermined: [], errors: [], gpus: [] };
  const assignment = assignGpus(
    config.entries,
    inv.gpus.map((g) => ({ ...gpuIdentity(g), gpu: g })),
    { offers: (e, id) => offersEntry(id.gpu, e) },
  );
  for (const p of assignment.problems) out.errors.push({ gpu: null, where: `${file.filename}:${p.line}:${p.column}: ${p.path}`, message: p.message });
  const owner = new Map(assignment.assigned.map((a) => [a.gpu.address, a.entry]));
  for (const g of inv.gpus) {
    const entry = owner.get(g.pci.address);
    if (!entry || entry.mode === 'dra') {
      // No entry, or the DRA driver's: the static plan leaves the GPU as it is.
      out.gpus.push(untouched(g, entry ? 'dra' : 'untouched'));
      continue;
    }
    const p = new GpuPlan(inv, g, entry, file, opts.inUse ?? new Map(), opts.nodeId, opts.vfioDriverFor?.(g) ?? 'vfio-pci');
    planGpu(p);
    out.gpus.push(p.outcome);
    out.errors.push(...p.errors);
    findUnnamed(p);
    if (p.undetermined.length) {
      // What is on the GPU cannot be told: nothing on it changes, whatever the config asks.
      out.undetermined.push(...p.undetermined);
      continue;
    }
    out.blocked.push(...p.blocked);
    // All or nothing per GPU: a target that must wait for a VM leaves the GPU as it is.
    if (p.errors.length === 0 && !p.cannotFinish) out.actions.push(...p.actions);
  }
  // Never apply part of an invalid config.
  if (out.errors.length) out.actions = [];
  return out;
}

const UNNAMED_FIX =
  'make the host driver\'s nvidia-smi reachable to vmgpu (the Helm chart mounts it from agent.driverRoot), or let the catalog learn the name ' +
  'from a free VF of a GPU of the same model and driver version (on this node or, with the agent, on any node of the cluster); ' +
  'see docs/troubleshooting.md "Unknown vGPU types"';

/** Record every vGPU on the GPU whose type no source names. */
function findUnnamed(p: GpuPlan): void {
  for (const v of p.gpu.vfs) {
    if (v.currentTypeId === 0 || v.currentProfile !== null) continue;
    p.undetermine(
      v.address,
      `VF ${v.address} holds vGPU type ID ${v.currentTypeId}, which vmgpu cannot name: no free VF of this GPU lists it, the catalog has not seen it and nvidia-smi did not name it`,
      UNNAMED_FIX,
    );
  }
  for (const parent of p.gpu.mdevParents) {
    for (const i of parent.instances) {
      if (i.typeName === null) p.undetermine(i.uuid, `mdev ${i.uuid} has type ${i.typeDir}, whose name vmgpu cannot read`, `check ${i.typeDir} under ${parent.address}/mdev_supported_types`);
    }
  }
}

function untouched(g: Gpu, mode: 'dra' | 'untouched'): GpuOutcome {
  return { gpu: g.pci.address, model: g.model.name, mode, want: {}, kept: 0 };
}

function planGpu(p: GpuPlan): void {
  if (p.entry.mode === 'passthrough') planPassthrough(p);
  else if (p.entry.mode === 'host') planHost(p);
  else planVgpu(p);
}

function planVgpu(p: GpuPlan): void {
  const g = p.gpu;
  // Passed through, or left on no driver by an interrupted bind/unbind: give it back to the vGPU manager first.
  const offHost = g.framework === 'passthrough' || g.pci.driver === null;
  if (!g.capabilities.vgpu.usable && !offHost) return p.error(`${g.model.name} (${g.pci.address}) cannot host vGPUs: ${g.capabilities.vgpu.reason}`);
  if (offHost && !returnToVgpuManager(p)) return;
  // Also when only a companion (audio) is still on vfio-pci after an interrupted return.
  returnFromVfio(p);
  if (g.model.vgpuFramework === 'sriov') planSriov(p);
  else if (g.model.vgpuFramework === 'mdev') planMdev(p);
  else p.error(`${g.model.name} (${g.pci.address}) is not a vGPU model vmgpu knows`);
}

/** A GPU off the vGPU manager can go back when the node has one and no VM holds the GPU. */
function returnToVgpuManager(p: GpuPlan): boolean {
  const g = p.gpu;
  if (!p.inv.node.vgpuHostDriver) {
    p.error(`${g.pci.address} is ${g.framework === 'passthrough' ? 'passed through' : 'bound to no driver'} and this node has no NVIDIA vGPU manager driver to host vGPUs`);
    return false;
  }
  const who = p.inUse.get(g.pci.address);
  if (who === undefined) return true;
  // Blocked now, but a request that could never fit is still an error.
  const oneType = g.model.vgpuFramework === 'mdev';
  const slots = g.model.vgpuFramework === 'sriov' || boardOf(g)?.mdevOnVfs ? (g.pci.sriov?.totalVfs ?? 0) : Number.MAX_SAFE_INTEGER;
  if (checkRequests(p, { slots, oneTypeOnly: oneType })) p.waitForTarget(g.pci.address, 'return the GPU to the vGPU manager', `in use: ${who}`);
  return false;
}
