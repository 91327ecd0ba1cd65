import { test } from 'node:test';
import assert from 'node:assert/strict';
import { driverBranch, MULTI_VGPU_RULES, multiVgpuPolicy, multiVgpuProblem, multiVgpuRule, type VgpuMember } from '../../../src/model/multi-vgpu.js';

const m = (id: string, profile: string | null, gpu: string): VgpuMember => ({ id, profile, gpu });

test('rules are data sorted by branch, each with a source; the driver version picks one', () => {
  assert.deepEqual(
    MULTI_VGPU_RULES.map((r) => r.fromBranch),
    [...MULTI_VGPU_RULES.map((r) => r.fromBranch)].sort((a, b) => a - b),
  );
  for (const r of MULTI_VGPU_RULES) {
    assert.ok(r.source.length > 20, `rule from ${r.fromBranch} names its source`);
    assert.ok(!r.series.includes('A') && !r.series.includes('B'), 'A- and B-series are never combined');
  }
  assert.equal(driverBranch('570.133.10'), 570);
  assert.equal(driverBranch('595.58.02'), 595);
  assert.equal(driverBranch(''), undefined);
  assert.equal(driverBranch('banana'), undefined);
  assert.equal(multiVgpuRule('470.256.02')?.releases, 'vGPU 14 and older');
  assert.equal(multiVgpuRule('535.230.02')?.releases, 'vGPU 15 to 17');
  assert.equal(multiVgpuRule('595.58.02')?.releases, 'vGPU 18 and later');
  assert.equal(multiVgpuRule(null), undefined);
});

test('policy: series, MIG-backed and whole-GPU rules per branch, unknowns refused', () => {
  assert.deepEqual(multiVgpuPolicy('L40S-24Q', '595.58.02'), { ok: true, sameGpu: true, rule: multiVgpuRule('595.58.02') });
  assert.equal((multiVgpuPolicy('L40S-24Q', '535.230.02') as { sameGpu: boolean }).sameGpu, false);
  assert.match((multiVgpuPolicy('L40S-4A', '595.58.02') as { why: string }).why, /A-series/);
  assert.match((multiVgpuPolicy('A100-2-10C', '470.256.02') as { why: string }).why, /MIG-backed/);
  assert.equal(multiVgpuPolicy('A100-2-10C', '535.230.02').ok, true);
  assert.equal(multiVgpuPolicy('T4-16C', '470.256.02').ok, true);
  assert.match((multiVgpuPolicy('T4-4C', '470.256.02') as { why: string }).why, /whole GPU's framebuffer/);
  assert.match((multiVgpuPolicy('NOSUCHBOARD-16Q', '470.256.02') as { why: string }).why, /no facts for its board/);
  assert.match((multiVgpuPolicy(null, '595.58.02') as { why: string }).why, /is not one vmgpu can read/);
  assert.match((multiVgpuPolicy('L40S-24Q', null) as { why: string }).why, /host driver version is unknown/);
});

test('a VM: same board and series, sizes may differ from vGPU 15, time-sliced and MIG-backed never mixed', () => {
  const v = '595.58.02';
  assert.equal(multiVgpuProblem([m('a', 'L40S-24Q', 'g0')], null), null, 'one vGPU is always fine');
  assert.equal(multiVgpuProblem([m('a', 'A40-48C', 'g0'), m('b', 'A40-16C', 'g1')], v), null, "NVIDIA's own example");
  assert.equal(multiVgpuProblem([m('a', 'A100-4-20C', 'g0'), m('b', 'A100-2-10C', 'g0')], v), null, "NVIDIA's MIG-backed example");
  assert.match(multiVgpuProblem([m('a', 'A30-8C', 'g0'), m('b', 'A16-8C', 'g1')], v)!, /same board type and series/);
  assert.match(multiVgpuProblem([m('a', 'L40S-24Q', 'g0'), m('b', 'L40S-24C', 'g1')], v)!, /same board type and series/);
  assert.match(multiVgpuProblem([m('a', 'A100-40C', 'g0'), m('b', 'A100-2-10C', 'g1')], v)!, /time-sliced and MIG-backed/);
  assert.match(multiVgpuProblem([m('a', 'T4-16Q', 'g0'), m('b', 'T4-16C', 'g1')], '470.256.02')!, /same board type and series/);
  assert.match(multiVgpuProblem([m('a', 'L40S-24Q', 'g0'), m('b', 'L40S-24Q', 'g0')], '550.90.05')!, /both live on physical GPU g0/);
  assert.equal(multiVgpuProblem([m('a', 'L40S-24Q', 'g0'), m('b', 'L40S-24Q', 'g0')], '570.133.10'), null);
});
