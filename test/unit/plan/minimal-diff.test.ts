/**
 * Minimal diff and deterministic placement: vGPUs that already match stay
 * (same VF, same mdev UUID, never rewritten), new ones go to the lowest free
 * VF unless vf-placement says otherwise, and mdev UUIDs survive a reboot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stableMdevUuid } from '../../../src/plan/plan.js';
import { configOf, converge, assertMatches, mdevs, planOn, sim, vfProfiles, NODE_ID } from './helpers.js';

const rep = (p: string, n: number) => Array.from({ length: n }, () => p);
const l40s = (n: number, extra = '') => configOf(`- devices: all${extra}\n  vgpu-devices:\n    L40S-12Q: ${n}`);

/** Writes since `from` whose path is under one of the given VFs. */
function writesTo(node: ReturnType<typeof sim>, from: number, vfs: string[]): string[] {
  return node
    .writeLog()
    .slice(from)
    .filter((w) => vfs.some((v) => w.path.includes(`/${v}/`)))
    .map((w) => `${w.path} <- ${w.data}`);
}

void test('growing a count keeps every existing VF assignment and adds on the lowest free VFs', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  await converge(node, l40s(2));
  assert.deepEqual([...vfProfiles(node)], [[0, 'L40S-12Q'], [1, 'L40S-12Q']]);
  const vfs = node.gpus[0]!.vfs.map((v) => v.fn.addr);
  const w = node.writes();
  const { plan } = await converge(node, l40s(4));
  assert.equal(plan.gpus[0]!.kept, 2);
  assert.deepEqual(writesTo(node, w, vfs.slice(0, 2)), [], 'the kept VFs were written to');
  assert.deepEqual([...vfProfiles(node)], [[0, 'L40S-12Q'], [1, 'L40S-12Q'], [2, 'L40S-12Q'], [3, 'L40S-12Q']]);
  assert.equal(plan.actions.length, 2);
  assert.ok(plan.actions.every((a) => a.kind === 'set-vf-type'));
});

void test('shrinking a count clears only the surplus (never delete-all-and-recreate)', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 4) }] });
  const w = node.writes();
  await converge(node, l40s(2));
  assert.deepEqual([...vfProfiles(node)], [[0, 'L40S-12Q'], [1, 'L40S-12Q']]);
  assert.equal(node.writes() - w, 2, 'exactly two writes: 0 to VF 2 and VF 3');
  assert.ok(node.writeLog().slice(w).every((x) => x.data === '0' && x.path.endsWith('/nvidia/current_vgpu_type')));
});

void test('the lowest free VF is filled first, around VFs that stay', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 2\n  vf-placement:\n    L40S-12Q: [0, 2]'));
  assert.deepEqual([...vfProfiles(node).keys()], [0, 2], 'vf-placement is honoured');
  // Without placement the two stay where they are, and the third takes VF 1.
  await converge(node, l40s(3));
  assert.deepEqual([...vfProfiles(node).keys()], [0, 1, 2]);
  await assertMatches(node, l40s(3));
});

void test('vf-placement moves a vGPU only when asked, and is deterministic across nodes', async () => {
  const cfg = configOf('- devices: all\n  vgpu-devices:\n    L40S-24Q: 2\n  vf-placement:\n    L40S-24Q: [5, 7]');
  const a = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', count: 2 }] });
  const b = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', count: 2 }] });
  await converge(a, cfg);
  await converge(b, cfg);
  for (const g of [0, 1]) assert.deepEqual([...vfProfiles(a, g)], [[5, 'L40S-24Q'], [7, 'L40S-24Q']]);
  assert.deepEqual(a.writeLog(), b.writeLog(), 'the same config on the same hardware makes the same writes');
});

void test('mdev: growing keeps every existing UUID; new UUIDs are derived from node, parent and slot', async () => {
  const node = sim({ gpus: [{ model: 'A100', mode: 'mdev-vgpu' }] });
  const cfg = (n: number) => configOf(`- devices: all\n  vgpu-devices:\n    A100D-4C: ${n}`);
  await converge(node, cfg(3));
  const first = mdevs(node);
  assert.equal(first.size, 3);
  for (const [uuid, where] of first) assert.equal(uuid, stableMdevUuid(NODE_ID, where.split(' ')[0]!, 0));
  await converge(node, cfg(5));
  const second = mdevs(node);
  assert.equal(second.size, 5);
  for (const [uuid, where] of first) assert.equal(second.get(uuid), where, `mdev ${uuid} moved or vanished`);
  // Parents: the lowest VFs, one vGPU each (Ampere).
  const parents = [...second.values()].map((x) => x.split(' ')[0]).sort();
  assert.deepEqual(parents, node.gpus[0]!.vfs.slice(0, 5).map((v) => v.fn.addr));
});

void test('mdev on the PF (T4): several instances on one parent get distinct stable UUIDs by slot', async () => {
  const node = sim({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] });
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 4'));
  const pf = node.gpus[0]!.pf.addr;
  assert.deepEqual([...mdevs(node).keys()].sort(), [0, 1, 2, 3].map((s) => stableMdevUuid(NODE_ID, pf, s)).sort());
});

void test('mdev UUIDs are the same after a reboot and re-apply', async () => {
  for (const model of ['A100', 'T4'] as const) {
    const node = sim({ gpus: [{ model, mode: 'mdev-vgpu', count: 2 }] });
    const cfg = configOf(`- devices: all\n  vgpu-devices:\n    ${model === 'A100' ? 'A100D-10C' : 'T4-2Q'}: 4`);
    await converge(node, cfg);
    const before = [mdevs(node, 0), mdevs(node, 1)];
    node.reboot();
    assert.equal(mdevs(node, 0).size, 0, 'the reboot removed the mdevs');
    await converge(node, cfg);
    assert.deepEqual([mdevs(node, 0), mdevs(node, 1)], before, `${model}: same UUIDs on the same parents`);
  }
});

void test('mdev UUIDs differ between nodes (node identity is part of them)', async () => {
  const node = sim({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] });
  const cfg = configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 1');
  const a = await planOn(node, cfg, 'c', { nodeId: 'node-a' });
  const b = await planOn(node, cfg, 'c', { nodeId: 'node-b' });
  const uuid = (p: typeof a.plan) => p.actions.find((x) => x.kind === 'create-mdev')!;
  assert.notEqual((uuid(a.plan) as { uuid: string }).uuid, (uuid(b.plan) as { uuid: string }).uuid);
});

void test('mdev: surplus instances are removed, matching ones kept; a different type replaces all that do not match', async () => {
  const node = sim({ gpus: [{ model: 'T4', mode: 'mdev-vgpu', profiles: rep('T4-2Q', 6) }] });
  const before = mdevs(node);
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    T4-2Q: 4'));
  const after = mdevs(node);
  assert.equal(after.size, 4);
  for (const u of after.keys()) assert.ok(before.has(u), 'a kept mdev is one of the old ones');
});
