/**
 * MIG-backed vGPU end to end (issue 15, item 2): vmgpu switches MIG mode,
 * creates the GPU instances the requested profiles need (placed as the card's
 * geometry allows), refuses geometries the card cannot hold, never touches a
 * GPU instance a VM's vGPU sits on, and the same config converges on a fresh
 * simulated A100 and H100.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyOn, assertMatches, configOf, converge, layout, planOn, sim } from './helpers.js';

const H100 = '0x233110DE';
const A100_40 = '0x20F110DE';

/** One config for both cards: the same 7-slice geometry in each one's names. */
const mixed = configOf(
  [
    `- device-filter: "${H100}"`,
    '  devices: all',
    '  vgpu-devices:',
    '    H100-3-40C: 1',
    '    H100-2-20C: 1',
    '    H100-1-10C: 2',
    `- device-filter: "${A100_40}"`,
    '  devices: all',
    '  vgpu-devices:',
    '    A100-3-20C: 1',
    '    A100-2-10C: 1',
    '    A100-1-5C: 2',
  ].join('\n'),
);

const migState = (node: ReturnType<typeof sim>, gpu = 0) => node.migState(node.gpus[gpu]!.pf.addr);

void test('a valid 7-slice geometry of mixed sizes applies and converges on a fresh H100', async () => {
  const node = sim({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  await converge(node, mixed);
  await assertMatches(node, mixed);
  assert.deepEqual(Object.values(layout(node))[0], ['H100-1-10C', 'H100-1-10C', 'H100-2-20C', 'H100-3-40C']);
  const mig = migState(node)!;
  assert.equal(mig.current, true);
  assert.deepEqual(mig.instances.map((i) => i.profile).sort(), ['1g.10gb', '1g.10gb', '2g.20gb', '3g.40gb']);
});

void test('the same kind of mix applies and converges on a fresh A100 (one MIG-backed vGPU per GPU instance)', async () => {
  const node = sim({ gpus: [{ model: 'A100-40GB', mode: 'mdev-vgpu' }] });
  await converge(node, mixed);
  await assertMatches(node, mixed);
  assert.deepEqual(Object.values(layout(node))[0], ['A100-1-5C', 'A100-1-5C', 'A100-2-10C', 'A100-3-20C']);
  assert.deepEqual(migState(node)!.instances.map((i) => i.profile).sort(), ['1g.5gb', '1g.5gb', '2g.10gb', '3g.20gb']);
});

void test('a geometry the card cannot hold is refused with a positioned error, and nothing is planned', async () => {
  const node = sim({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  const file = configOf('- devices: all\n  vgpu-devices:\n    H100-3-40C: 2\n    H100-1-10C: 1');
  const { plan } = await planOn(node, file);
  assert.equal(plan.actions.length, 0);
  assert.equal(plan.errors.length, 1, JSON.stringify(plan.errors));
  assert.match(plan.errors[0]!.where, /^test\.yaml:\d+:\d+: /);
  assert.match(plan.errors[0]!.message, /3g\.40gb.*1g\.10gb|cannot hold/);
});

void test('GFX names of NVIDIA\'s file apply: DC-1-24QGFX is the driver\'s DC-1-24Q on 1g.24gb+gfx instances', async () => {
  const node = sim({ gpus: [{ model: 'RTX-PRO-6000', mode: 'sriov-vgpu' }] });
  const file = configOf('- devices: all\n  vgpu-devices:\n    DC-1-24QGFX: 4');
  await converge(node, file);
  await assertMatches(node, file);
  assert.deepEqual(Object.values(layout(node))[0], ['DC-1-24Q', 'DC-1-24Q', 'DC-1-24Q', 'DC-1-24Q']);
  assert.deepEqual(migState(node)!.instances.map((i) => i.profile), ['1g.24gb+gfx', '1g.24gb+gfx', '1g.24gb+gfx', '1g.24gb+gfx']);
});

void test('a GPU instance a VM\'s vGPU sits on is never destroyed; the change waits for the VM', async () => {
  const node = sim({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    H100-3-40C: 2'));
  const vf = node.gpus[0]!.vfs.find((v) => v.typeId !== 0)!;
  node.hold(vf.fn.addr);
  const before = migState(node)!.instances;
  const held = before.find((i) => i.id === node.gpuInstanceOf(vf.fn.addr))!;
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    H100-1-10C: 7'));
  assert.deepEqual(plan.errors, []);
  for (const a of plan.actions) if (a.kind === 'destroy-gpu-instance') assert.notEqual(a.instanceId, held.id, 'destroys the held vGPU\'s instance');
  assert.ok(plan.blocked.length > 0, 'the change is reported as blocked');
  const result = await applyOn(node, plan);
  assert.equal(result.failure, null);
  assert.ok(migState(node)!.instances.some((i) => i.id === held.id), 'the held instance is still there');
});

void test('time-sliced and MIG-backed never share a GPU: a held MIG-backed vGPU keeps MIG mode on and the time-sliced target waits', async () => {
  const node = sim({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    H100-1-10C: 2'));
  node.hold(node.gpus[0]!.vfs.find((v) => v.typeId !== 0)!.fn.addr);
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    H100-10C: 2'));
  assert.deepEqual(plan.errors, []);
  assert.deepEqual(plan.actions.filter((a) => a.kind === 'set-mig-mode' || a.kind === 'set-vf-type'), []);
  assert.ok(plan.blocked.length > 0);
});

void test('time-sliced after MIG-backed: GPU instances go, MIG mode goes off, and the time-sliced vGPUs converge', async () => {
  const node = sim({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  await converge(node, mixed);
  const back = configOf('- devices: all\n  vgpu-devices:\n    H100-20C: 4');
  await converge(node, back);
  await assertMatches(node, back);
  assert.equal(migState(node)!.current, false);
  assert.deepEqual(migState(node)!.instances, []);
});

void test('without nvidia-smi the MIG state cannot be read: a GPU whose profiles need MIG is left as it is (undetermined)', async () => {
  const node = sim({ nvidiaSmi: false, gpus: [{ model: 'H100', mode: 'sriov-vgpu' }] });
  const { inv, plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    H100-1-10C: 2'));
  assert.equal(inv.gpus[0]!.mig, null);
  assert.deepEqual(plan.actions, []);
  assert.equal(plan.undetermined.length, 1);
  assert.match(plan.undetermined[0]!.reason, /MIG mode and GPU instances .* cannot be read/);
});

void test('A100: a MIG switch the driver leaves pending (the GPU was busy) fails the apply with what to do, and nothing after it runs', async () => {
  const node = sim({ gpus: [{ model: 'A100-40GB', mode: 'mdev-vgpu' }] });
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    A100-1-5C: 2'));
  // Something outside vmgpu brings the VFs back between plan and apply: the GPU is busy at the switch.
  const disable = plan.actions.findIndex((a) => a.kind === 'disable-vfs');
  const rest = { ...plan, actions: plan.actions.filter((_, i) => i !== disable) };
  const result = await applyOn(node, rest);
  assert.match(result.failure?.message ?? '', /pending on: .*reboot the node, then apply again/);
  assert.deepEqual(migState(node), { current: false, pending: true, instances: [] });
  assert.ok(!result.steps.some((s) => s.action.kind === 'create-gpu-instance'));
});

void test('validate-config refuses, without a node, a MIG geometry the card cannot hold', async () => {
  const { validateOnPaper } = await import('../../../src/plan/validate.js');
  const bad = configOf('- device-filter: "0x233110DE"\n  devices: all\n  vgpu-devices:\n    H100-4-40C: 1\n    H100-3-40C: 1\n    H100-1-10C: 1');
  const res = validateOnPaper(bad);
  assert.equal(res.errors.length, 1, JSON.stringify(res.errors));
  assert.match(res.errors[0]!.message, /4g\.40gb \+ 3g\.40gb \+ 1g\.10gb.*cannot hold/);
  assert.deepEqual(validateOnPaper(mixed).errors, []);
});

void test('after a reboot (instances gone; MIG mode kept on A100, lost on H100) the same config converges again', async () => {
  for (const spec of [{ model: 'A100-40GB', mode: 'mdev-vgpu' as const }, { model: 'H100', mode: 'sriov-vgpu' as const }]) {
    const node = sim({ gpus: [spec] });
    await converge(node, mixed);
    node.reboot();
    assert.equal(migState(node)!.current, spec.model === 'A100-40GB', `${spec.model}: MIG mode after a reboot`);
    assert.deepEqual(migState(node)!.instances, []);
    await converge(node, mixed);
    await assertMatches(node, mixed);
    assert.equal(Object.values(layout(node))[0]!.length, 4, spec.model);
  }
});
