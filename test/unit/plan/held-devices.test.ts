/**
 * A GPU changes only when its whole target can be reached: while a VM holds
 * one of its vGPUs and the target cannot be built around it, the GPU keeps
 * every vGPU it has (the free ones too), and the plan says what waits for
 * which device. Where the target can coexist with the held vGPU (mixed-size
 * mode with room), the rest is applied and only the held vGPU waits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyOn, configOf, planOn, sim, vfProfiles } from './helpers.js';

const rep = (p: string, n: number) => Array.from({ length: n }, () => p);

void test('SR-IOV: 4 x 12Q with one held, target 2 x 24Q: the three free 12Q stay, nothing is written', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 4) }] });
  const vf0 = node.gpus[0]!.vfs[0]!.fn.addr;
  node.hold(vf0);
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    L40S-24Q: 2'));
  assert.deepEqual(plan.errors, []);
  assert.deepEqual(plan.actions, [], 'free vGPUs were planned away for a change that cannot finish');
  assert.ok(plan.blocked.length > 0);
  assert.ok(plan.blocked.every((b) => b.waitsFor.includes(vf0)), `every blocked change names the VF it waits for: ${JSON.stringify(plan.blocked)}`);
  assert.ok(plan.blocked.some((b) => b.device === vf0 && /in use: process \d+ \(qemu-system-x86_64\)/.test(b.reason)));
  const w = node.writes();
  await applyOn(node, plan);
  assert.equal(node.writes(), w);
  assert.deepEqual([...vfProfiles(node).values()], rep('L40S-12Q', 4));
});

void test('SR-IOV: once the VM lets go, the same config completes', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 4) }] });
  const vf0 = node.gpus[0]!.vfs[0]!.fn.addr;
  node.hold(vf0);
  const cfg = configOf('- devices: all\n  vgpu-devices:\n    L40S-24Q: 2');
  await applyOn(node, (await planOn(node, cfg)).plan);
  node.release(vf0);
  const { plan } = await planOn(node, cfg);
  assert.deepEqual(plan.blocked, []);
  await applyOn(node, plan);
  assert.deepEqual([...vfProfiles(node).values()], rep('L40S-24Q', 2));
});

void test('mdev: 4 x A100D-20C with one held, target 2 x A100D-40C: the free instances stay', async () => {
  const node = sim({ gpus: [{ model: 'A100', mode: 'mdev-vgpu', profiles: rep('A100D-20C', 4) }] });
  const held = [...node.gpus[0]!.mdevs.keys()][0]!;
  node.hold(held);
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    A100D-40C: 2'));
  assert.deepEqual(plan.errors, []);
  assert.deepEqual(plan.actions, []);
  assert.ok(plan.blocked.every((b) => b.waitsFor.includes(held)));
});

void test('mixed-size mode with room: the target coexists with the held vGPU, so the rest is applied now', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', heterogeneous: true, profiles: rep('L40S-12Q', 2) }] });
  const vf0 = node.gpus[0]!.vfs[0]!.fn.addr;
  node.hold(vf0);
  const { plan } = await planOn(node, configOf('- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-24Q: 1\n    L40S-4Q: 2'));
  assert.deepEqual(plan.errors, []);
  assert.ok(plan.actions.some((a) => a.kind === 'set-vf-type' && a.profile === 'L40S-24Q'), 'the 24Q is created beside the held 12Q');
  assert.deepEqual(
    plan.blocked.map((b) => b.device),
    [vf0],
    'only the held VF waits',
  );
});

void test('host mode: a held VF keeps the GPU on the vGPU manager, and its free vGPUs stay', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 4) }] });
  node.hold(node.gpus[0]!.vfs[1]!.fn.addr);
  const { plan } = await planOn(node, configOf('- devices: all\n  mode: host'));
  assert.deepEqual(plan.actions, []);
  assert.ok(plan.blocked.length > 0);
});

void test('host mode: once the VM lets go the vGPUs are cleared and the VFs disabled; a second plan has nothing to do', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 4) }] });
  const held = node.gpus[0]!.vfs[1]!.fn.addr;
  node.hold(held);
  const cfg = configOf('- devices: all\n  mode: host');
  assert.ok(!(await planOn(node, cfg)).plan.actions.some((a) => a.kind === 'disable-vfs'), 'VFs stay while one is held');
  node.release(held);
  const { plan } = await planOn(node, cfg);
  assert.deepEqual(plan.actions.map((a) => a.kind), ['clear-vf-type', 'clear-vf-type', 'clear-vf-type', 'clear-vf-type', 'disable-vfs'], 'the types first, then the VFs');
  await applyOn(node, plan);
  assert.equal(node.gpus[0]!.vfs.length, 0);
  assert.deepEqual((await planOn(node, cfg)).plan.actions, []);
});

void test('host mode: a held VF without a vGPU type keeps the VFs on', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: [] }] });
  const vf = node.gpus[0]!.vfs[0]!.fn.addr;
  node.hold(vf);
  const { plan } = await planOn(node, configOf('- devices: all\n  mode: host'));
  assert.deepEqual(plan.actions, []);
  assert.ok(plan.blocked.some((b) => b.waitsFor.includes(vf)), JSON.stringify(plan.blocked));
});

void test('a mixed-size switch while a VM holds a vGPU waits (exit 4), never refused as bad input, and other GPUs are applied', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', count: 2, profiles: rep('L40S-12Q', 2) }] });
  const held = node.gpus[0]!.vfs[0]!.fn.addr;
  node.hold(held);
  const { plan } = await planOn(node, configOf('- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-24Q: 1\n    L40S-4Q: 2'));
  assert.deepEqual(plan.errors, [], 'a valid config is not bad input because a VM holds a vGPU');
  assert.ok(plan.blocked.some((b) => b.gpu === '0000:18:00.0' && b.waitsFor.includes(held)));
  assert.ok(!plan.actions.some((a) => a.gpu === '0000:18:00.0'), 'the GPU with the held vGPU is left as it is');
  assert.ok(plan.actions.some((a) => a.gpu === '0000:2a:00.0' && a.kind === 'set-mixed-sizes'), 'the other GPU is switched and filled');
});

void test('a mixed-size switch with only free vGPUs clears and rebuilds them (the driver takes the switch only on an empty GPU)', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 2) }] });
  const { plan } = await planOn(node, configOf('- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-12Q: 1\n    L40S-4Q: 2'));
  assert.deepEqual(plan.errors, []);
  await applyOn(node, plan);
  assert.equal(node.gpus[0]!.heterogeneous, true);
  assert.deepEqual([...vfProfiles(node).values()].sort(), ['L40S-12Q', 'L40S-4Q', 'L40S-4Q']);
});

void test('IOMMU group: a held passthrough GPU protects its audio function', async () => {
  const node = sim({ gpus: [{ model: 'RTX6000-Ada', mode: 'passthrough' }] });
  const gpu = node.gpus[0]!;
  assert.ok(gpu.audio, 'the model has an audio function in the GPU group');
  node.hold(gpu.pf.addr);
  const { plan } = await planOn(node, configOf('- devices: all\n  mode: host'));
  assert.ok(!plan.actions.some((a) => a.kind === 'unbind-vfio' && a.device === gpu.audio!.addr), 'the audio function of a held GPU was planned to move');
  const before = gpu.audio.driver;
  await applyOn(node, plan);
  assert.equal(gpu.audio.driver, before);
});
