// One reconcile on a simulated node: every way it ends comes back as a ReconcileOutcome, never as an exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeLockPath } from '../../../../src/machine/lock.js';
import { openSimulated } from '../../../../src/machine/simulated.js';
import type { InUse } from '../../../../src/plan/types.js';
import { reconcileDesired, worthRecording, writesOf, type ReconcileEnv, type ReconcileOutcome } from '../../../../src/serve/agent/reconcile.js';
import { verdictOf } from '../../../../src/serve/agent/status.js';
import type { Desired } from '../../../../src/serve/agent/state.js';
import { silentLogger } from '../../../../src/serve/kube/logger.js';
import { podsHolding, PodResourcesClient, PodResourcesError } from '../../../../src/serve/kubelet/pod-resources.js';
import { createSimulatedNode } from '../../../../src/simulator/index.js';

const CONFIG = `version: v1
vgpu-configs:
  small:
    - devices: all
      vgpu-devices:
        L40S-1Q: 32
      resource-names:
        L40S-1Q: example.com/small
  large:
    - devices: all
      vgpu-devices:
        L40S-2Q: 24
  too-many:
    - devices: all
      vgpu-devices:
        L40S-48Q: 2
`;

const want = (configName: string, configText = CONFIG): Desired => ({ workload: 'vm-vgpu', configName, configText, fileName: 'config.yaml' });

function node(pods: () => Promise<InUse> = async () => new Map()) {
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] });
  const env: ReconcileEnv = { machine: openSimulated(sim), nodeId: 'n1', podsHolding: pods, log: silentLogger };
  return { sim, env };
}

void test('applied: the plan runs, the node is re-read, and the config’s resource names come along', async () => {
  const { sim, env } = node();
  const out = await reconcileDesired(env, { desired: want('small'), mode: 'reconcile' });
  assert.equal(out.kind, 'applied');
  assert.ok(out.kind === 'applied' && out.writes > 0 && out.blocked.length === 0);
  assert.equal(writesOf(out), sim.writes());
  assert.equal(out.planned?.inventory.gpus[0]!.vfs.filter((v) => v.currentProfile === 'L40S-1Q').length, 32, 'the inventory is the node after the writes');
  assert.deepEqual(out.planned?.resourceNames, { 'L40S-1Q': 'example.com/small' });
});

void test('noop: asked to skip a node that already matches, nothing is written', async () => {
  const { sim, env } = node();
  await reconcileDesired(env, { desired: want('small'), mode: 'reconcile' });
  const before = sim.writes();
  const out = await reconcileDesired(env, { desired: want('small'), mode: 'reconcile', skipIfMatches: true });
  assert.equal(out.kind, 'noop');
  assert.equal(writesOf(out), 0);
  assert.equal(sim.writes(), before);
});

void test('failed at each stage, with what it got to see and nothing written', async () => {
  const config = await reconcileDesired(node().env, { desired: want('small', 'version: v1\nvgpu-configs: [\n'), mode: 'reconcile' });
  assert.ok(config.kind === 'failed' && config.stage === 'config' && config.planned === null, JSON.stringify(config));

  const unknown = await reconcileDesired(node().env, { desired: want('nope'), mode: 'reconcile' });
  assert.ok(unknown.kind === 'failed' && unknown.stage === 'config' && /nope/.test(unknown.error));

  const { sim, env } = node();
  const plan = await reconcileDesired(env, { desired: want('too-many'), mode: 'reconcile' });
  assert.ok(plan.kind === 'failed' && plan.stage === 'plan', JSON.stringify(plan));
  assert.ok(plan.planned && plan.planned.plan.errors.length > 0, 'the plan with its errors is kept for the status');
  assert.equal(sim.writes(), 0);
});

void test('pod-resources: a reconcile never guesses without the kubelet; boot relies on open VFIO files only', async () => {
  const down = async (): Promise<InUse> => {
    throw new PodResourcesError('pod-resources List failed: connection refused');
  };
  const { sim, env } = node(down);
  const out = await reconcileDesired(env, { desired: want('small'), mode: 'reconcile' });
  assert.ok(out.kind === 'failed' && out.stage === 'pod-resources' && /connection refused/.test(out.error));
  assert.equal(sim.writes(), 0);
  const boot = await reconcileDesired(env, { desired: want('small'), mode: 'boot' });
  assert.equal(boot.kind, 'applied');
});

void test('applied with blocked changes: a device a VM holds is left alone and reported', async () => {
  const { sim, env } = node();
  await reconcileDesired(env, { desired: want('small'), mode: 'reconcile' });
  const held = (await env.machine.inventory()).gpus[0]!.vfs[0]!.address;
  sim.hold(held);
  const out = await reconcileDesired(env, { desired: want('large'), mode: 'reconcile' });
  assert.equal(out.kind, 'applied');
  assert.ok(out.kind === 'applied' && out.blocked.some((b) => b.device === held), JSON.stringify(out.kind === 'applied' ? out.blocked : out));
});

void test('worthRecording: after any write, or when a config new to the record holds completely', () => {
  const planned = { plan: { undetermined: [] } } as unknown as NonNullable<ReconcileOutcome['planned']>; // worthRecording reads only kind, writes, blocked and undetermined
  const applied = (writes: number, blocked: number): ReconcileOutcome => ({ kind: 'applied', planned, writes, blocked: Array.from({ length: blocked }, () => ({ gpu: 'g', device: 'd', change: 'c', reason: 'r', waitsFor: ['d'] })) });
  assert.equal(worthRecording(applied(3, 1), 'k', 'k'), true, 'a write changed the node');
  assert.equal(worthRecording(applied(0, 0), null, 'k'), true, 'nothing recorded yet and the node matches');
  assert.equal(worthRecording(applied(0, 0), 'k', 'k'), false, 'already recorded');
  assert.equal(worthRecording(applied(0, 1), null, 'k'), false, 'nothing written and still blocked');
  const unknown = { plan: { undetermined: [{ gpu: 'g', device: 'd', reason: 'r', fix: 'f' }] } } as unknown as NonNullable<ReconcileOutcome['planned']>;
  assert.equal(worthRecording({ kind: 'applied', planned: unknown, writes: 0, blocked: [] }, null, 'k'), false, 'nothing written and part of the node cannot be told');
  assert.equal(worthRecording({ kind: 'noop', planned }, null, 'k'), false);
  assert.equal(worthRecording({ kind: 'failed', stage: 'apply', error: 'x', planned: null, writes: 2 }, null, 'k'), false);
});

void test('the node lock (defect 5): a reconcile plans and applies only while it holds the lock; a busy lock is a retry with nothing written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-reconcile-lock-'));
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] });
  const machine = openSimulated(sim, { saveTo: dir });
  let lockedWhilePlanning = false;
  const env: ReconcileEnv = {
    machine,
    nodeId: 'n1',
    log: silentLogger,
    podsHolding: async () => {
      lockedWhilePlanning = existsSync(nodeLockPath({ simulateDir: dir }));
      return new Map();
    },
  };
  const admin = await machine.lock({ command: 'vmgpu apply', waitMs: 0 });
  const busy = await reconcileDesired(env, { desired: want('small'), mode: 'reconcile', lockWaitMs: 0 });
  assert.equal(busy.kind, 'busy');
  assert.ok(busy.kind === 'busy' && /vmgpu apply/.test(busy.reason), 'the reason names the other writer');
  assert.equal(sim.writes(), 0, 'nothing written while another writer holds the node');
  admin.release();

  const out = await reconcileDesired(env, { desired: want('small'), mode: 'reconcile', lockWaitMs: 0 });
  assert.equal(out.kind, 'applied');
  assert.ok(lockedWhilePlanning, 'the lock is held while the kubelet is asked and the plan is made');
  assert.ok(!existsSync(nodeLockPath({ simulateDir: dir })), 'and released afterwards');
});

void test('no pod-resources socket (defect 2): a reconcile changes nothing and fails with the reason', async () => {
  const client = new PodResourcesClient('/nonexistent/pod-resources/kubelet.sock');
  const { sim, env } = node(() => podsHolding(client, null, new Set()));
  const seeded = node().env;
  await reconcileDesired({ ...seeded, machine: env.machine }, { desired: want('small'), mode: 'reconcile' });
  const before = sim.writes();
  const out = await reconcileDesired(env, { desired: want('large'), mode: 'reconcile' });
  assert.ok(out.kind === 'failed' && out.stage === 'pod-resources', out.kind);
  assert.match(out.error, /does not exist/);
  assert.equal(sim.writes(), before, 'no write while in-use cannot be determined');
});

void test('boot without the kubelet (defect 2): only what takes no device from a pod is done (VFs and vGPUs lost at reboot come back); the rest waits', async () => {
  const down = async (): Promise<InUse> => {
    throw new PodResourcesError('the socket does not exist');
  };
  const { sim, env } = node(down);
  const up = { ...env, podsHolding: async (): Promise<InUse> => new Map() };
  await reconcileDesired(up, { desired: want('small'), mode: 'reconcile' });
  sim.reboot();
  const restored = await reconcileDesired(env, { desired: want('small'), mode: 'boot' });
  assert.equal(restored.kind, 'applied');
  assert.equal(restored.planned?.inventory.gpus[0]!.vfs.filter((v) => v.currentProfile === 'L40S-1Q').length, 32, 'the layout lost at reboot is back');

  const before = sim.writes();
  const changed = await reconcileDesired(env, { desired: want('large'), mode: 'boot' });
  assert.ok(changed.kind === 'applied' && changed.writes === 0 && changed.blocked.length > 0, changed.kind);
  assert.match(changed.kind === 'applied' ? changed.blocked[0]!.reason : '', /kubelet/);
  assert.equal(sim.writes(), before, 'no vGPU a pod may hold is cleared without the kubelet\'s answer');
});

void test('a full card whose types nothing names (defect 1): no write, and the verdict is failed with the fix, not success', async () => {
  const sim = createSimulatedNode({ nvidiaSmi: false, gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-24Q', 'L40S-24Q'] }] });
  const env: ReconcileEnv = { machine: openSimulated(sim), nodeId: 'n1', podsHolding: async () => new Map(), log: silentLogger };
  const config = `version: v1\nvgpu-configs:\n  l40s-24q:\n    - devices: all\n      vgpu-devices:\n        L40S-24Q: 2\n  l40s-12q:\n    - devices: all\n      vgpu-devices:\n        L40S-12Q: 4\n`;
  for (const name of ['l40s-24q', 'l40s-12q']) {
    const out = await reconcileDesired(env, { desired: want(name, config), mode: 'reconcile' });
    assert.equal(sim.writes(), 0, `${name}: nothing written to a vGPU vmgpu cannot name`);
    const v = verdictOf(out, name);
    assert.equal(v.state, 'failed', name);
    assert.match(v.reason, /cannot name/);
    assert.match(v.reason, /nvidia-smi/);
  }
});
