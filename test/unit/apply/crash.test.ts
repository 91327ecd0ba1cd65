/**
 * Crash safety: for representative transitions, kill the applier before every
 * single write (k = 0 .. all writes), then plan and apply again on the same
 * node. The node must converge (assert passes) with exactly the requested
 * vGPUs: no strays, nothing missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SimNodeSpec, SimulatedNode } from '../../../src/simulator/index.js';
import type { ConfigFile } from '../../../src/spec/config.js';
import { applyOn, assertMatches, configOf, converge, crashingAfter, Killed, layout, planOn, sim } from '../plan/helpers.js';

interface Transition {
  name: string;
  spec: SimNodeSpec;
  /** Optional config applied first to reach the starting state. */
  before?: ConfigFile;
  after: ConfigFile;
  /** The exact vGPUs expected per GPU afterwards (sorted profile names). */
  expect: Record<string, string[]>;
  /** The PF drivers expected afterwards. */
  drivers?: Record<string, string>;
}

const rep = (p: string, n: number) => Array.from({ length: n }, () => p);
const PF = '0000:18:00.0';

const transitions: Transition[] = [
  {
    name: 'empty -> L40S-12Q x4 (VFs off, sriov-manage)',
    spec: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 4'),
    expect: { [PF]: rep('L40S-12Q', 4) },
  },
  {
    name: 'empty -> L40S-12Q x4 (VFs off, sriov_numvfs)',
    spec: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }], sriovManage: false },
    after: configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 4'),
    expect: { [PF]: rep('L40S-12Q', 4) },
  },
  {
    name: 'L40S-12Q x4 -> L40S-4Q x12 in mixed-size mode',
    spec: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 4) }] },
    after: configOf('- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-4Q: 12'),
    expect: { [PF]: rep('L40S-4Q', 12) },
  },
  {
    name: 'L40S-12Q x4 (mixed) -> L40S-12Q x2 + L40S-4Q x6 (mixed)',
    spec: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', heterogeneous: true, profiles: rep('L40S-12Q', 4) }] },
    after: configOf('- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-12Q: 2\n    L40S-4Q: 6'),
    expect: { [PF]: [...rep('L40S-12Q', 2), ...rep('L40S-4Q', 6)].sort() },
  },
  {
    name: 'A100 mdev: empty (VFs off) -> A100D-4C x5',
    spec: { gpus: [{ model: 'A100', mode: 'mdev-vgpu', vfsEnabled: false }], sriovManage: false },
    after: configOf('- devices: all\n  vgpu-devices:\n    A100D-4C: 5'),
    expect: { [PF]: rep('A100D-4C', 5) },
  },
  {
    name: 'A100 mdev: A100D-4C x5 -> A100D-20C x2',
    spec: { gpus: [{ model: 'A100', mode: 'mdev-vgpu', profiles: rep('A100D-4C', 5) }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    A100D-20C: 2'),
    expect: { [PF]: rep('A100D-20C', 2) },
  },
  {
    name: 'T4 mdev: T4-2Q x8 -> T4-4Q x4',
    spec: { gpus: [{ model: 'T4', mode: 'mdev-vgpu', profiles: rep('T4-2Q', 8) }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 4'),
    expect: { [PF]: rep('T4-4Q', 4) },
  },
  {
    name: 'vGPU (L40S-12Q x2) -> passthrough',
    spec: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: rep('L40S-12Q', 2) }] },
    after: configOf('- devices: all\n  mode: passthrough'),
    expect: { [PF]: [] },
    drivers: { [PF]: 'vfio-pci' },
  },
  {
    name: 'passthrough -> vGPU (L40S-12Q x4)',
    spec: { gpus: [{ model: 'L40S', mode: 'passthrough' }], vgpuHostDriver: true },
    after: configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 4'),
    expect: { [PF]: rep('L40S-12Q', 4) },
    drivers: { [PF]: 'nvidia' },
  },
  {
    name: 'RTX6000-Ada with audio: vGPU -> passthrough',
    spec: { gpus: [{ model: 'RTX6000-Ada', mode: 'sriov-vgpu', profiles: rep('RTX6000-Ada-8Q', 3) }] },
    after: configOf('- devices: all\n  mode: passthrough'),
    expect: { [PF]: [] },
    drivers: { [PF]: 'vfio-pci', '0000:18:00.1': 'vfio-pci' },
  },
  {
    name: 'RTX6000-Ada with audio: passthrough -> vGPU',
    spec: { gpus: [{ model: 'RTX6000-Ada', mode: 'passthrough' }], vgpuHostDriver: true },
    after: configOf('- devices: all\n  vgpu-devices:\n    RTX6000-Ada-8Q: 3'),
    expect: { [PF]: rep('RTX6000-Ada-8Q', 3) },
    drivers: { [PF]: 'nvidia', '0000:18:00.1': 'snd_hda_intel' },
  },
  {
    name: 'passthrough -> host',
    spec: { gpus: [{ model: 'H100', mode: 'passthrough' }], vfioVariantFor: ['H100'], vgpuHostDriver: false },
    after: configOf('- devices: all\n  mode: host'),
    expect: { [PF]: [] },
    drivers: { [PF]: 'nvidia' },
  },
  {
    name: 'H100: time-sliced -> MIG-backed 3g + 2g + 2 x 1g (VFs off, MIG on, instances, types)',
    spec: { gpus: [{ model: 'H100', mode: 'sriov-vgpu', profiles: rep('H100-20C', 2) }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    H100-3-40C: 1\n    H100-2-20C: 1\n    H100-1-10C: 2'),
    expect: { [PF]: ['H100-1-10C', 'H100-1-10C', 'H100-2-20C', 'H100-3-40C'] },
  },
  {
    name: 'A100 mdev: A100D-1-10C x7 -> A100D-3-40C x2 (instances destroyed and recreated)',
    spec: { gpus: [{ model: 'A100', mode: 'mdev-vgpu', profiles: rep('A100D-1-10C', 7) }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    A100D-3-40C: 2'),
    expect: { [PF]: rep('A100D-3-40C', 2) },
  },
  {
    name: 'H100: MIG-backed -> time-sliced (instances go, MIG off)',
    spec: { gpus: [{ model: 'H100', mode: 'sriov-vgpu', profiles: rep('H100-1-10C', 3) }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    H100-10C: 4'),
    expect: { [PF]: rep('H100-10C', 4) },
  },
];

function start(t: Transition): SimulatedNode {
  const node = sim(t.spec);
  return node;
}

function drivers(node: SimulatedNode): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const g of node.gpus) for (const fn of [g.pf, g.audio]) if (fn) out[fn.addr] = fn.driver;
  return out;
}

async function checkConverged(node: SimulatedNode, t: Transition, label: string): Promise<void> {
  await assertMatches(node, t.after);
  assert.deepEqual(layout(node), t.expect, `${label}: exactly the requested vGPUs`);
  if (t.drivers) for (const [a, d] of Object.entries(t.drivers)) assert.equal(drivers(node)[a], d, `${label}: driver of ${a}`);
}

for (const t of transitions) {
  void test(`crash after every write converges: ${t.name}`, async () => {
    // The uninterrupted run: how many writes it makes.
    const ref = start(t);
    if (t.before) await converge(ref, t.before);
    const w0 = ref.writes();
    await converge(ref, t.after);
    const total = ref.writes() - w0;
    assert.ok(total > 0, 'the transition makes writes');
    await checkConverged(ref, t, 'uninterrupted');

    for (let k = 0; k < total; k++) {
      const node = start(t);
      if (t.before) await converge(node, t.before);
      const { plan } = await planOn(node, t.after);
      assert.deepEqual(plan.errors, []);
      const before = node.writes();
      const res = await applyOn(node, plan, crashingAfter(node, k));
      assert.equal(node.writes() - before, k, `k=${k}: exactly ${k} writes reached the node before the kill`);
      assert.ok(res.failure, `k=${k}: the run was stopped`);
      assert.match(res.failure.message, /killed before write/);
      // Restart: plan from what the node is now, apply to the end.
      const again = await planOn(node, t.after);
      assert.deepEqual(again.plan.errors, [], `k=${k}: re-plan after the crash has errors: ${again.plan.errors.map((e) => e.message).join('; ')}`);
      const res2 = await applyOn(node, again.plan);
      assert.equal(res2.failure, null, `k=${k}: re-apply failed: ${res2.failure?.message}`);
      assert.deepEqual(res2.blocked, [], `k=${k}: nothing is blocked`);
      await checkConverged(node, t, `k=${k}`);
    }
  });
}

void test('the kill wrapper really stops the applier (k = 0 writes nothing)', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  const f = configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 4');
  const { plan } = await planOn(node, f);
  const res = await applyOn(node, plan, crashingAfter(node, 0));
  assert.ok(res.failure);
  assert.ok(res.failure.message.includes(new Killed('killed before write 1').message));
  assert.equal(node.writes(), 0);
  assert.deepEqual(layout(node), { [PF]: [] });
});
