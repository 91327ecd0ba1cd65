/**
 * Drift (issue 11, defect 9): VFs and vGPUs lost by a driver reload or an
 * sriov_numvfs reset are found by the periodic local assert (no API server
 * involved), and a node that matches is left alone. A node with vGPUs it
 * could not name is looked at again when a name appears.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSimulated } from '../../../../src/machine/simulated.js';
import { checkPciAddress } from '../../../../src/model/pci.js';
import { driftOf, lookForDrift } from '../../../../src/serve/agent/drift.js';
import { reconcileDesired, type ReconcileEnv } from '../../../../src/serve/agent/reconcile.js';
import type { Desired } from '../../../../src/serve/agent/state.js';
import { statusOf, verdictOf } from '../../../../src/serve/agent/status.js';
import { silentLogger } from '../../../../src/serve/kube/logger.js';
import { createSimulatedNode } from '../../../../src/simulator/index.js';

const CONFIG = 'version: v1\nvgpu-configs:\n  l40s-12q:\n    - devices: all\n      vgpu-devices:\n        L40S-12Q: 4\n';
const desired: Desired = { workload: 'vm-vgpu', configName: 'l40s-12q', configText: CONFIG, fileName: 'config.yaml' };

async function applied(spec = { nvidiaSmi: true }) {
  const sim = createSimulatedNode({ ...spec, gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }] });
  const env: ReconcileEnv = { machine: openSimulated(sim), nodeId: 'n1', podsHolding: async () => new Map(), log: silentLogger };
  const out = await reconcileDesired(env, { desired, mode: 'reconcile' });
  const status = statusOf(verdictOf(out, 'l40s-12q'), 'k', null, null);
  assert.equal(status.state, 'success');
  return { sim, env, status };
}

void test('a node that still matches shows no drift', async () => {
  const { env, status } = await applied();
  assert.equal(await lookForDrift(env.machine, desired, status, 'n1', new Map()), null);
});

void test('a change waiting for a device a pod holds is not drift', async () => {
  const { sim, env, status } = await applied();
  const other = { ...desired, configText: CONFIG.replace('L40S-12Q: 4', 'L40S-24Q: 2') };
  const vf = sim.gpus[0]!.vfs[0]!.fn.addr;
  const out = await reconcileDesired({ ...env, podsHolding: async () => new Map([[vf, 'pod tenant/vm-a (nvidia.com/L40S-12Q)']]) }, { desired: other, mode: 'reconcile' });
  const pending = statusOf(verdictOf(out, 'l40s-12q'), 'k2', status, null);
  assert.equal(pending.state, 'pending');
  assert.equal(await lookForDrift(env.machine, other, pending, 'n1', new Map([[vf, 'pod tenant/vm-a']])), null);
  assert.equal(await lookForDrift(env.machine, other, pending, 'n1', new Map()), null, 'released, not yet re-planned: the pending re-check goes on, it is not drift');
  sim.port.writeSriovNumVfs(checkPciAddress(sim.gpus[1]!.pf.addr), 0);
  const other2 = await lookForDrift(env.machine, other, pending, 'n1', new Map([[vf, 'pod tenant/vm-a']]));
  assert.equal(other2?.kind, 'drift', 'while one GPU waits, another that lost its VFs is drift');
  assert.match(other2!.summary, /0000:2a:00\.0/);
});

void test('a driver reload (VFs, types gone) and an sriov_numvfs reset are drift, with what is missing; the repair makes it go away', async () => {
  const { sim, env, status } = await applied();
  sim.reboot();
  const reload = await lookForDrift(env.machine, desired, status, 'n1', new Map());
  assert.equal(reload?.kind, 'drift');
  assert.match(reload!.summary, /enable 32 VFs on 0000:18:00\.0/);

  const repaired = await reconcileDesired(env, { desired, mode: 'reconcile' });
  const after = statusOf(verdictOf(repaired, 'l40s-12q'), 'k', status, null);
  assert.equal(after.state, 'success');
  assert.equal(await lookForDrift(env.machine, desired, after, 'n1', new Map()), null);

  sim.port.writeSriovNumVfs(checkPciAddress(sim.gpus[1]!.pf.addr), 0);
  const reset = await lookForDrift(env.machine, desired, after, 'n1', new Map());
  assert.equal(reset?.kind, 'drift');
  assert.match(reset!.summary, /0000:2a:00\.0/);
});

void test('undetermined vGPUs: a name that appears asks for a new look; the same unknowns do not', () => {
  const u = (device: string) => ({ gpu: '0000:18:00.0', device, reason: 'cannot name', fix: 'nvidia-smi' });
  const plan = (undetermined: ReturnType<typeof u>[]) => ({ configName: 'c', actions: [], blocked: [], undetermined, errors: [], gpus: [] });
  const status = { ...statusOf(verdictOf({ kind: 'noop', planned: { plan: plan([u('0000:18:00.4'), u('0000:18:00.5')]), inventory: null, resourceNames: {} } } as never, 'c'), 'k', null, null) };
  assert.equal(status.state, 'failed');
  assert.equal(driftOf(status, plan([u('0000:18:00.4'), u('0000:18:00.5')])), null, 'nothing new');
  assert.equal(driftOf(status, plan([]))?.kind, 'names', 'the types are named now');
});
