/**
 * Helpers shared by the planner and applier tests: a simulated node, its
 * inventory, a config from text, plan + apply in one call, and snapshots of
 * the node's device state to prove what a run did (or did not) touch.
 */
import assert from 'node:assert/strict';
import { applyPlan, type ApplyOptions, type ApplyResult } from '../../../src/apply/apply.js';
import { PciIds } from '../../../src/inventory/pciids.js';
import type { Inventory } from '../../../src/inventory/types.js';
import type { Machine } from '../../../src/machine/machine.js';
import { planOn as planOnMachine } from '../../../src/machine/plan-on.js';
import { openSimulated } from '../../../src/machine/simulated.js';
import type { Plan } from '../../../src/plan/types.js';
import { parseConfig } from '../../../src/spec/load.js';
import type { ConfigFile } from '../../../src/spec/config.js';
import { createSimulatedNode, SimHostTools, type SimNodeSpec, type SimulatedNode } from '../../../src/simulator/index.js';
import type { SimModel } from '../../../src/simulator/hardware.js';
import type { SysfsBackend } from '../../../src/sysfs/backend.js';
import type { HostTools } from '../../../src/sysfs/host-tools.js';
import { SysfsPort } from '../../../src/sysfs/port.js';

export const NODE_ID = 'test-node';

export function sim(spec: SimNodeSpec): SimulatedNode {
  return createSimulatedNode(spec);
}

/** A machine over the simulated node, as the CLI and the agent open one (no PCI IDs database, for speed). */
function machineOf(node: SimulatedNode): Machine {
  return openSimulated(node, { pciIds: PciIds.empty() });
}

export async function inventoryOf(node: SimulatedNode): Promise<Inventory> {
  return machineOf(node).inventory();
}

/** A one-config file from YAML entries written under `vgpu-configs.<name>`. */
export function configOf(entriesYaml: string, name = 'c'): ConfigFile {
  const body = entriesYaml
    .split('\n')
    .map((l) => (l.trim() ? `    ${l}` : l))
    .join('\n');
  return parseConfig(`version: v1\nvgpu-configs:\n  ${name}:\n${body}\n`, 'test.yaml');
}

export async function planOn(node: SimulatedNode, file: ConfigFile, name = file.configs[0]!.name, opts: { nodeId?: string } = {}): Promise<{ inv: Inventory; plan: Plan }> {
  return planOnMachine(machineOf(node), { file, name, nodeId: opts.nodeId ?? NODE_ID });
}

export async function applyOn(node: SimulatedNode, p: Plan, extra: Partial<ApplyOptions> = {}): Promise<ApplyResult> {
  return applyPlan(p, { port: node.port, tools: new SimHostTools(node), sleep: async () => {}, ...extra });
}

/** Plan and apply; fails the test when the plan has errors. */
export async function converge(node: SimulatedNode, file: ConfigFile, name = file.configs[0]!.name): Promise<{ plan: Plan; result: ApplyResult }> {
  const { plan } = await planOn(node, file, name);
  assert.deepEqual(plan.errors, [], 'the plan has errors');
  const result = await applyOn(node, plan);
  assert.equal(result.failure, null, `apply failed: ${result.failure?.message}`);
  return { plan, result };
}

/** A fresh node with `count` GPUs of a simulated model, in its vGPU mode. */
export function freshNode(m: SimModel, count = 2): SimulatedNode {
  return sim({ gpus: [{ model: m.key, count, mode: m.framework === 'sriov' ? 'sriov-vgpu' : 'mdev-vgpu' }] });
}

/** On a fresh node of the model, the config plans with changes and no errors, applies, and the node then matches it. */
export async function convergesOnFresh(m: SimModel, file: ConfigFile, name: string): Promise<void> {
  const node = freshNode(m);
  const { plan } = await planOn(node, file, name);
  assert.deepEqual(plan.errors, [], `${name} on ${m.key}`);
  assert.ok(plan.actions.length > 0, `${name} changes nothing on a fresh ${m.key} node`);
  await converge(node, file, name);
  await assertMatches(node, file, name);
}

/** `vmgpu assert`: the plan from the node as it is has no actions and nothing blocked. */
export async function assertMatches(node: SimulatedNode, file: ConfigFile, name = file.configs[0]!.name): Promise<void> {
  const { plan } = await planOn(node, file, name);
  assert.deepEqual(plan.errors, []);
  assert.deepEqual(plan.actions, [], 'the node does not match: actions remain');
  assert.deepEqual(plan.blocked, [], 'the node does not match: changes are blocked');
}

/** Everything a VM could notice about one device, by ID (VF/PF/audio address or mdev UUID). */
export function deviceStates(node: SimulatedNode): Map<string, string> {
  const out = new Map<string, string>();
  for (const g of node.gpus) {
    for (const fn of [g.pf, g.audio]) if (fn) out.set(fn.addr, `driver=${fn.driver} override=${fn.override} vfio=${fn.vfio}`);
    for (const v of g.vfs) out.set(v.fn.addr, `type=${v.typeId} params=${v.params} driver=${v.fn.driver} vfio=${v.fn.vfio}`);
    for (const m of g.mdevs.values()) out.set(m.uuid, `type=${m.type.id} parent=${m.parent.addr} params=${m.params} group=${m.group}`);
  }
  return out;
}

/** The vGPUs on a node as `gpu -> sorted profiles` (VF types by name, mdev types by profile). */
export function layout(node: SimulatedNode): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const g of node.gpus) {
    const list: string[] = [];
    for (const v of g.vfs) if (v.typeId) list.push(g.types.find((t) => t.id === v.typeId)!.profile);
    for (const m of g.mdevs.values()) list.push(m.type.profile);
    out[g.pf.addr] = list.sort();
  }
  return out;
}

/** VF index -> profile on one GPU (configured VFs only). */
export function vfProfiles(node: SimulatedNode, gpu = 0): Map<number, string> {
  const g = node.gpus[gpu]!;
  const out = new Map<number, string>();
  for (const v of g.vfs) if (v.typeId) out.set(v.index, g.types.find((t) => t.id === v.typeId)!.profile);
  return out;
}

/** mdev UUID -> `parent profile` on one GPU. */
export function mdevs(node: SimulatedNode, gpu = 0): Map<string, string> {
  const g = node.gpus[gpu]!;
  return new Map([...g.mdevs.values()].map((m) => [m.uuid, `${m.parent.addr} ${m.type.profile}`]));
}

/** Thrown by a crashing port or tool: stands for the process being killed. */
export class Killed extends Error {
  override readonly name = 'Killed';
}

/**
 * A port and host tools over `node` that let the first `k` writes through and
 * throw Killed instead of making write k+1 (the simulator's write log counts
 * sysfs writes and tool runs alike). The applier stops at the first error that
 * is not EBUSY, so nothing after the kill reaches the node: as if killed.
 */
export function crashingAfter(node: SimulatedNode, k: number): Pick<ApplyOptions, 'port' | 'tools'> {
  const start = node.writes();
  const gate = () => {
    if (node.writes() - start >= k) throw new Killed(`killed before write ${k + 1}`);
  };
  const b = node.backend;
  const backend: SysfsBackend = {
    description: b.description,
    display: (r, p) => b.display(r, p),
    read: (r, p) => b.read(r, p),
    readlink: (r, p) => b.readlink(r, p),
    list: (r, p) => b.list(r, p),
    kind: (r, p) => b.kind(r, p),
    exists: (r, p) => b.exists(r, p),
    write: (r, p, d) => {
      gate();
      b.write(r, p, d);
    },
  };
  const t = new SimHostTools(node);
  const tools: HostTools = {
    sriovManageEnable: async (pf) => {
      gate();
      await t.sriovManageEnable(pf);
    },
    nvidiaSmiSupportedTypes: (pf) => t.nvidiaSmiSupportedTypes(pf),
    heterogeneousMode: (pf) => t.heterogeneousMode(pf),
    setHeterogeneousMode: async (pf, on) => {
      gate();
      await t.setHeterogeneousMode(pf, on);
    },
    sriovManageDisable: async (pf) => {
      gate();
      await t.sriovManageDisable(pf);
    },
    migMode: (pf) => t.migMode(pf),
    setMigMode: async (pf, on) => {
      gate();
      await t.setMigMode(pf, on);
    },
    gpuInstances: (pf) => t.gpuInstances(pf),
    createGpuInstance: async (pf, profile, start) => {
      gate();
      await t.createGpuInstance(pf, profile, start);
    },
    destroyGpuInstance: async (pf, id) => {
      gate();
      await t.destroyGpuInstance(pf, id);
    },
    nvlinkPairs: (onNvidia) => t.nvlinkPairs(onNvidia),
  };
  return { port: new SysfsPort(backend), tools };
}
