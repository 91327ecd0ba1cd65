/**
 * Issue 11, randomized: config changes on a simulated L40S node, each with
 * random devices held (by a pod, known only to the kubelet, or by a VM, an
 * open VFIO group) and random facts missing (the host's nvidia-smi, the
 * kubelet's answer, the host PID view, the catalog cache). After each step:
 * - no held device changed, and no write went to one;
 * - no vGPU whose type the node could not name changed;
 * - once everything is released and every fact is back, applying the same
 *   config again converges: success, and nothing left to do or unknown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { CatalogCache } from '../../../src/inventory/catalog-cache.js';
import { PciIds } from '../../../src/inventory/pciids.js';
import { machineOf, type Machine } from '../../../src/machine/machine.js';
import { planOn } from '../../../src/machine/plan-on.js';
import type { InUse } from '../../../src/plan/types.js';
import { reconcileDesired } from '../../../src/serve/agent/reconcile.js';
import { verdictOf } from '../../../src/serve/agent/status.js';
import { silentLogger } from '../../../src/serve/kube/logger.js';
import { PodResourcesError } from '../../../src/serve/kubelet/pod-resources.js';
import { parseConfig } from '../../../src/spec/load.js';
import { createSimulatedNode, SimHostTools, type SimulatedNode } from '../../../src/simulator/index.js';
import type { HostTools } from '../../../src/sysfs/host-tools.js';
import { SysfsError } from '../../../src/sysfs/errors.js';
import { loadSeed001 } from '../../support/shell-loader.js';
import { deviceState } from './cells.js';

const CONFIGS: Record<string, string> = {
  'l40s-24q': 'L40S-24Q: 2',
  'l40s-12q': 'L40S-12Q: 4',
  'l40s-4q': 'L40S-4Q: 12',
  'l40s-48q': 'L40S-48Q: 1',
  'l40s-12q-2': 'L40S-12Q: 2',
};
const TEXT = `version: v1\nvgpu-configs:\n${Object.entries(CONFIGS)
  .map(([n, v]) => `  ${n}:\n    - devices: all\n      vgpu-devices:\n        ${v}\n`)
  .join('')}  passthrough:\n    - devices: all\n      mode: passthrough\n  host:\n    - devices: all\n      mode: host\n`;
const NAMES = [...Object.keys(CONFIGS), 'passthrough', 'host'];
const FILE = parseConfig(TEXT, 'config.yaml');

interface Facts {
  tools: boolean;
  pods: 'reachable' | 'missing' | 'erroring';
  hostPidView: boolean;
  cache: boolean;
}
interface Step {
  config: string;
  /** Indices into the node's held-able devices, each held by a pod or a VM. */
  holds: { pick: number; by: 'pod' | 'vm' }[];
  facts: Facts;
}

const step: fc.Arbitrary<Step> = fc.record({
  config: fc.constantFrom(...NAMES),
  holds: fc.array(fc.record({ pick: fc.nat(), by: fc.constantFrom('pod' as const, 'vm' as const) }), { maxLength: 3 }),
  facts: fc.record({ tools: fc.boolean(), pods: fc.constantFrom('reachable' as const, 'missing' as const, 'erroring' as const), hostPidView: fc.boolean(), cache: fc.boolean() }),
});
const start = fc.constantFrom('empty', 'partly used', 'full', 'full from the shell loader', 'passthrough');

function startNode(card: string): SimulatedNode {
  const profiles = card === 'partly used' ? ['L40S-12Q', 'L40S-12Q'] : card === 'full' ? ['L40S-24Q', 'L40S-24Q'] : undefined;
  const sim = createSimulatedNode({ vgpuHostDriver: true, gpus: [{ model: 'L40S', count: 1, mode: card === 'passthrough' ? 'passthrough' : 'sriov-vgpu', ...(profiles ? { profiles } : {}) }] });
  if (card === 'full from the shell loader') loadSeed001(sim, sim.gpus[0]!.pf.addr);
  return sim;
}

/** The host tools without nvidia-smi (as in the chart's container without agent.driverRoot). */
function withoutNvidiaSmi(tools: HostTools): HostTools {
  const missing = async (): Promise<never> => {
    throw new SysfsError('exec', 'nvidia-smi', 'ENOENT', 'nvidia-smi is not reachable');
  };
  return {
    sriovManageEnable: (pf) => tools.sriovManageEnable(pf),
    sriovManageDisable: (pf) => tools.sriovManageDisable(pf),
    nvidiaSmiSupportedTypes: async () => undefined,
    heterogeneousMode: async () => undefined,
    setHeterogeneousMode: missing,
    migMode: async () => undefined,
    setMigMode: missing,
    gpuInstances: async () => undefined,
    createGpuInstance: missing,
    destroyGpuInstance: missing,
    nvlinkPairs: async () => undefined,
  };
}

/** The node as vmgpu sees it with `facts`: the same simulated hardware, fewer sources. */
function machineFor(sim: SimulatedNode, facts: Facts, stateDir: string): Machine {
  const tools = new SimHostTools(sim);
  return machineOf({
    port: sim.port,
    tools: facts.tools ? tools : withoutNvidiaSmi(tools),
    pciIds: PciIds.empty(),
    kernelRelease: sim.kernelRelease,
    catalogCache: facts.cache ? new CatalogCache(stateDir) : undefined,
    vfioUsers: () => (facts.hostPidView ? sim.vfioUsers() : null),
    commit: () => {},
    lockPath: null,
  });
}

/** Devices a VM or a pod can hold now: typed VFs, and the GPU when it is passed through. */
function holdable(sim: SimulatedNode): string[] {
  const g = sim.gpus[0]!;
  return [...g.vfs.filter((v) => v.typeId !== 0).map((v) => v.fn.addr), ...(g.pf.driver === 'vfio-pci' ? [g.pf.addr] : [])];
}

function kubelet(facts: Facts, pods: InUse): () => Promise<InUse> {
  if (facts.pods === 'reachable') return async () => pods;
  return async () => {
    throw new PodResourcesError(facts.pods === 'missing' ? "the kubelet's pod-resources socket does not exist" : 'pod-resources List failed: connection refused');
  };
}

const ALL_KNOWN: Facts = { tools: true, pods: 'reachable', hostPidView: true, cache: true };
const desired = (config: string) => ({ workload: 'vm-vgpu' as const, configName: config, configText: TEXT, fileName: 'config.yaml' });

async function runStep(sim: SimulatedNode, s: Step, stateDir: string): Promise<void> {
  const can = holdable(sim);
  const pods = new Map<string, string>();
  const held = new Set<string>();
  for (const h of s.holds) {
    if (can.length === 0) break;
    const d = can[h.pick % can.length]!;
    held.add(d);
    if (h.by === 'vm') sim.hold(d);
    else pods.set(d, 'pod tenant/vm (nvidia.com/L40S)');
  }
  const machine = machineFor(sim, s.facts, stateDir);
  const unknown = (await machine.inventory()).gpus.flatMap((g) => g.vfs.filter((v) => v.currentTypeId !== 0 && v.currentProfile === null).map((v) => v.address));
  const before = deviceState(sim);
  const w0 = sim.writes();
  await reconcileDesired({ machine, nodeId: 'n1', log: silentLogger, podsHolding: kubelet(s.facts, pods) }, { desired: desired(s.config), mode: 'reconcile' });
  const now = deviceState(sim);
  const writes = sim.writeLog().slice(w0);
  for (const d of held) {
    assert.equal(now.get(d), before.get(d), `held ${d} changed (step ${JSON.stringify(s)})`);
    assert.ok(!writes.some((w) => w.path.includes(d)), `a write went to held ${d} (step ${JSON.stringify(s)})`);
  }
  for (const d of unknown) assert.equal(now.get(d), before.get(d), `${d}, of a type vmgpu could not name, changed (step ${JSON.stringify(s)})`);

  // Everything released, every fact back: the same config converges.
  for (const d of held) sim.release(d);
  const full = machineFor(sim, ALL_KNOWN, stateDir);
  const out = await reconcileDesired({ machine: full, nodeId: 'n1', log: silentLogger, podsHolding: async () => new Map() }, { desired: desired(s.config), mode: 'reconcile' });
  const v = verdictOf(out, s.config);
  assert.equal(v.state, 'success', `re-apply after release: ${v.reason} (step ${JSON.stringify(s)})`);
  const { plan } = await planOn(full, { file: FILE, name: s.config, nodeId: 'n1' });
  assert.deepEqual([plan.actions, plan.blocked, plan.undetermined], [[], [], []], `the node matches ${s.config} after the re-apply`);
}

void test('random config changes with random holds and missing facts: held and unknown devices never change; re-apply after release converges', async () => {
  await fc.assert(
    fc.asyncProperty(start, fc.array(step, { minLength: 1, maxLength: 4 }), async (card, steps) => {
      const sim = startNode(card);
      const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-random-'));
      try {
        for (const s of steps) await runStep(sim, s, stateDir);
      } finally {
        fs.rmSync(stateDir, { recursive: true, force: true });
      }
    }),
    { numRuns: 40 },
  );
});
