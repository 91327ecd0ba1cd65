// From a reconcile outcome to what the agent reports: the verdict, the status on the Node, and the Event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Blocked, Plan } from '../../../../src/plan/types.js';
import type { Planned, ReconcileOutcome } from '../../../../src/serve/agent/reconcile.js';
import { eventFor, releasedForPending, statusOf, unusableDesired, verdictOf, type AgentStatus } from '../../../../src/serve/agent/status.js';

const plan: Plan = { configName: 'small', actions: [], blocked: [], undetermined: [], errors: [], gpus: [{ gpu: '0000:3b:00.0', model: 'L40S', mode: 'vgpu', want: { 'L40S-1Q': 32 }, kept: 0 }] };
const planned = { plan, inventory: null, resourceNames: {} } as unknown as Planned; // the status reads only the plan
const blocked = (n: number): Blocked[] => Array.from({ length: n }, (_, i) => ({ gpu: '0000:3b:00.0', device: `0000:3b:00.${i + 4}`, change: 'clear L40S-1Q', reason: 'held by pod ns/vm', waitsFor: [`0000:3b:00.${i + 4}`] }));

void test('verdict: each outcome gives its state, reason, metric result and error kind', () => {
  const failed = verdictOf({ kind: 'failed', stage: 'pod-resources', error: 'kubelet down', planned: null, writes: 0 }, 'small');
  assert.deepEqual([failed.state, failed.reason, failed.result, failed.errorKind, failed.errors], ['failed', 'kubelet down', 'failed', 'pod-resources', ['kubelet down']]);
  const noop = verdictOf({ kind: 'noop', planned }, 'small');
  assert.deepEqual([noop.state, noop.reason, noop.result, noop.errorKind, noop.writes], ['success', 'the node already matches', 'noop', null, 0]);
  const applied = verdictOf({ kind: 'applied', planned, writes: 33, blocked: [] }, 'small');
  assert.deepEqual([applied.state, applied.reason, applied.result], ['success', 'applied (33 write(s))', 'success']);
  const pending = verdictOf({ kind: 'applied', planned, writes: 2, blocked: blocked(4) }, 'small');
  assert.equal(pending.state, 'pending');
  assert.match(pending.reason, /^4 change\(s\) wait for devices in use: 0000:3b:00\.4 \(held by pod ns\/vm\); .*; \.\.\.$/);
  assert.equal(pending.reason.split('; ').length, 4, 'three devices named, then ...');
  const unusable = unusableDesired('label nvidia.com/gpu.workload.config="gaming" is not one of ...');
  assert.deepEqual([unusable.state, unusable.config, unusable.errorKind], ['failed', null, 'config']);
});

void test('status: the plan’s GPUs and the blocked changes; a failure keeps the apply time the Node showed', () => {
  const ok = statusOf(verdictOf({ kind: 'applied', planned, writes: 1, blocked: blocked(1) }, 'small'), 'key1', null, '2026-01-01T00:00:00.000Z');
  assert.deepEqual(ok.gpus, [{ gpu: '0000:3b:00.0', model: 'L40S', mode: 'vgpu', want: { 'L40S-1Q': 32 }, kept: 0 }]);
  assert.deepEqual(ok.blocked, [{ gpu: '0000:3b:00.0', device: '0000:3b:00.4', change: 'clear L40S-1Q', reason: 'held by pod ns/vm', waitsFor: ['0000:3b:00.4'] }]);
  assert.equal(ok.observedGeneration, 'key1');
  assert.equal(ok.appliedAt, '2026-01-01T00:00:00.000Z');
  const failed = verdictOf({ kind: 'failed', stage: 'apply', error: 'EIO', planned, writes: 1 }, 'large');
  assert.equal(statusOf(failed, 'key2', ok, '2026-02-02T00:00:00.000Z').appliedAt, '2026-01-01T00:00:00.000Z');
  assert.equal(statusOf(failed, 'key2', null, '2026-02-02T00:00:00.000Z').appliedAt, '2026-02-02T00:00:00.000Z');
});

void test('events: every failure, each new pending set once, an apply or a change of outcome, and nothing for a restart that finds the node matching', () => {
  const status = (o: ReconcileOutcome, key: string, prev: AgentStatus | null): AgentStatus => statusOf(verdictOf(o, 'small'), key, prev, null);
  const failed = status({ kind: 'failed', stage: 'plan', error: 'too many', planned: null, writes: 0 }, 'k1', null);
  const e1 = eventFor(failed, null, 0, '');
  assert.deepEqual([e1.event?.type, e1.event?.reason, e1.event?.message], ['Warning', 'VgpuConfigFailed', 'config small: too many']);
  assert.equal(eventFor(failed, failed, 0, '').event?.reason, 'VgpuConfigFailed', 'failures are not deduplicated');

  const pending = status({ kind: 'applied', planned, writes: 3, blocked: blocked(1) }, 'k2', failed);
  const p1 = eventFor(pending, failed, 3, '');
  assert.equal(p1.event?.reason, 'VgpuConfigPending');
  assert.equal(eventFor(pending, pending, 0, p1.pendingSeen).event, null, 'the same pending set is announced once');
  const more = status({ kind: 'applied', planned, writes: 0, blocked: blocked(2) }, 'k2', pending);
  assert.equal(eventFor(more, pending, 0, p1.pendingSeen).event?.reason, 'VgpuConfigPending', 'a new pending set is announced');

  const done = status({ kind: 'applied', planned, writes: 0, blocked: [] }, 'k2', more);
  const d = eventFor(done, more, 0, p1.pendingSeen);
  assert.deepEqual([d.event?.reason, d.event?.message, d.pendingSeen], ['VgpuConfigApplied', 'config small applied: applied (0 write(s))', '']);
  const restart = status({ kind: 'noop', planned }, 'k2', null);
  assert.equal(eventFor(restart, null, 0, '').event, null);
  assert.equal(eventFor(restart, done, 0, '').event, null, 'same outcome for the same key');
  assert.equal(eventFor(status({ kind: 'noop', planned }, 'k3', null), done, 0, '').event?.reason, 'VgpuConfigApplied', 'another desired state now holds');
});

void test('undetermined (defect 1): a plan that leaves GPUs untouched because vmgpu cannot tell is failed, with the devices, the reason and the fix', () => {
  const undetermined = [0, 1].map((i) => ({ gpu: '0000:3b:00.0', device: `0000:3b:00.${i + 4}`, reason: `VF 0000:3b:00.${i + 4} holds vGPU type ID 1069, which vmgpu cannot name`, fix: 'make the host driver\'s nvidia-smi reachable' }));
  const unknown = { ...planned, plan: { ...plan, undetermined } };
  for (const outcome of [{ kind: 'noop', planned: unknown }, { kind: 'applied', planned: unknown, writes: 0, blocked: [] }] as ReconcileOutcome[]) {
    const v = verdictOf(outcome, 'l40s-24q');
    assert.equal(v.state, 'failed', `${outcome.kind} with undetermined devices is not success`);
    assert.equal(v.errorKind, 'undetermined');
    assert.match(v.reason, /^vmgpu cannot tell what is on 2 device\(s\) of GPU 0000:3b:00\.0, so it leaves that GPU as it is: VF 0000:3b:00\.4 holds vGPU type ID 1069, which vmgpu cannot name \(and 1 more\)\./);
    assert.match(v.reason, /Fix: make the host driver's nvidia-smi reachable/);
    const s = statusOf(v, 'k', null, null);
    assert.deepEqual(s.undetermined.map((u) => u.device), ['0000:3b:00.4', '0000:3b:00.5']);
    assert.equal(s.undetermined[0]!.fix, "make the host driver's nvidia-smi reachable");
  }
  const many = Array.from({ length: 64 }, (_, i) => ({ gpu: '0000:3b:00.0', device: `vf${i}`, reason: 'cannot name', fix: 'nvidia-smi' }));
  const big = statusOf(verdictOf({ kind: 'noop', planned: { ...planned, plan: { ...plan, undetermined: many } } }, 'c'), 'k', null, null);
  assert.equal(big.undetermined.length, 16, 'the annotation lists a bounded number');
  assert.match(big.reason, /64 device\(s\)/, 'the reason counts them all');
});

void test('the pending re-check looks at what each change waits for: a change blocked by capacity is re-planned only when a device it waits for is released', () => {
  // GPU 0000:3b:00.0 cannot take a 24Q while 0000:3b:00.4 (12Q) is held: the change is on the GPU, the wait on the VF.
  const capacity: Blocked = { gpu: '0000:3b:00.0', device: '0000:3b:00.0', change: 'set 24Q', reason: 'waits for 0000:3b:00.4', waitsFor: ['0000:3b:00.4'] };
  const s = statusOf(verdictOf({ kind: 'applied', planned, writes: 0, blocked: [capacity] }, 'large'), 'k', null, null);
  assert.deepEqual(s.blocked[0]!.waitsFor, ['0000:3b:00.4'], 'the status says what each change waits for');
  assert.equal(releasedForPending(s, new Set(['0000:3b:00.4'])), false, 'still held: nothing to re-plan');
  assert.equal(releasedForPending(s, new Set()), true, 'released: re-plan now');
  const boot: Blocked = { ...capacity, waitsFor: [] };
  assert.equal(releasedForPending(statusOf(verdictOf({ kind: 'applied', planned, writes: 0, blocked: [boot] }, 'large'), 'k', null, null), new Set()), false, 'waiting for nothing a release can end');
});
