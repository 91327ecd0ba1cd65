/**
 * A vGPU whose type ID vmgpu cannot name is unknown, never wrong: on a full
 * card (no free VF lists any type), without nvidia-smi and without a catalog
 * cache, the planner changes nothing on that GPU and says why and how to fix
 * it. Once a source names the type, the node is judged as usual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SimNodeSpec } from '../../../src/simulator/index.js';
import { configOf, planOn, sim } from './helpers.js';

/** Seed 001's layout: two L40S, each full with 2 x L40S-24Q (every VF's creatable list is empty). */
const full = (nvidiaSmi: boolean): SimNodeSpec => ({ nvidiaSmi, gpus: [{ model: 'L40S', mode: 'sriov-vgpu', count: 2, profiles: ['L40S-24Q', 'L40S-24Q'] }] });
const l40s24q = configOf('- devices: all\n  vgpu-devices:\n    L40S-24Q: 2');
const l40s12q = configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 4');

void test('unknown types on a full card without nvidia-smi: no change, each VF reported with the reason and the fix', async () => {
  const node = sim(full(false));
  const { inv, plan } = await planOn(node, l40s24q);
  assert.ok(inv.gpus.every((g) => g.vfs.filter((v) => v.currentTypeId !== 0).every((v) => v.currentProfile === null)), 'the simulator names nothing here');
  assert.deepEqual(plan.actions, [], 'a node vmgpu cannot read is never changed');
  assert.deepEqual(plan.errors, []);
  assert.equal(plan.undetermined.length, 4, 'every VF with an unnamed type is reported');
  for (const u of plan.undetermined) {
    assert.match(u.reason, /type ID [0-9]+, which vmgpu cannot name/);
    assert.match(u.fix, /nvidia-smi|catalog/);
  }
});

void test('unknown types block any other layout too: a different config changes nothing on that GPU', async () => {
  const node = sim(full(false));
  const { plan } = await planOn(node, l40s12q);
  assert.deepEqual(plan.actions, []);
  assert.equal(plan.undetermined.length, 4);
});

void test('with nvidia-smi the same node is named and matches', async () => {
  const node = sim(full(true));
  const { plan } = await planOn(node, l40s24q);
  assert.deepEqual(plan.actions, []);
  assert.deepEqual(plan.undetermined, []);
  assert.deepEqual(plan.blocked, []);
});

void test('host mode never clears a vGPU it cannot name', async () => {
  const node = sim(full(false));
  const { plan } = await planOn(node, configOf('- devices: all\n  mode: host'));
  assert.deepEqual(plan.actions, []);
  assert.equal(plan.undetermined.length, 4);
});

void test('passthrough never unbinds a GPU whose vGPUs it cannot name', async () => {
  const node = sim(full(false));
  const { plan } = await planOn(node, configOf('- devices: all\n  mode: passthrough'));
  assert.deepEqual(plan.actions, []);
  assert.equal(plan.undetermined.length, 4);
});
