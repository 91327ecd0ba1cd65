/**
 * Property-based tests of the config engine over random simulated nodes
 * (SR-IOV, mdev and passthrough GPUs, mixed), random configs drawn from each
 * board's profile facts, random starting layouts and random sets of devices
 * held by VMs.
 *
 * For every case:
 * - a rejected plan (errors) has no actions, and applying it writes nothing;
 * - an accepted plan wants no more than each board holds (framebuffer, max
 *   instances per profile, VFs), and the simulated driver, which enforces the
 *   same rules independently, never refuses a step;
 * - devices held by VMs keep their exact state and no write names them;
 * - with nothing held: apply, then `assert` passes and the layout is exactly
 *   what was asked; a second apply is a no-op with zero writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ApplyError } from '../../../src/apply/apply.js';
import { boardForDevice, type BoardFacts } from '../../../src/model/boards.js';
import { instanceProfileFor, placeInstances, vgpusPerInstance } from '../../../src/model/mig.js';
import { isConfigError } from '../../../src/spec/config.js';
import { simModel, type SimGpuSpec, type SimulatedNode } from '../../../src/simulator/index.js';
import { applyOn, configOf, deviceStates, layout, planOn, sim } from './helpers.js';

const SRIOV = ['L4', 'L40S', 'H100', 'H200'];
const MDEV = ['A100', 'A10', 'T4'];

function board(model: string): BoardFacts {
  const m = simModel(model);
  const b = boardForDevice(m.deviceId, m.subsystemDeviceId);
  if (!b) throw new Error(`no board facts for ${model}`);
  return b;
}

const gpuGroup: fc.Arbitrary<SimGpuSpec> = fc.oneof(
  fc.record({ model: fc.constantFrom(...SRIOV), count: fc.integer({ min: 1, max: 2 }), mode: fc.constant('sriov-vgpu' as const), vfsEnabled: fc.boolean() }),
  fc.record({ model: fc.constantFrom(...MDEV), count: fc.integer({ min: 1, max: 2 }), mode: fc.constant('mdev-vgpu' as const), vfsEnabled: fc.boolean() }),
  fc.record({ model: fc.constantFrom(...SRIOV, ...MDEV), count: fc.constant(1), mode: fc.constant('passthrough' as const) }),
);

/** What one GPU should become: a mode, and for vgpu up to two profiles with counts (indices into the board's list). */
interface GpuWish {
  use: 'skip' | 'vgpu' | 'passthrough' | 'host';
  profiles: { pick: number; count: number }[];
  mixed: boolean | null;
}

const wish: fc.Arbitrary<GpuWish> = fc.record({
  use: fc.constantFrom<GpuWish['use']>('vgpu', 'vgpu', 'vgpu', 'vgpu', 'passthrough', 'host', 'skip'),
  profiles: fc.array(fc.record({ pick: fc.nat(), count: fc.integer({ min: 1, max: 33 }) }), { minLength: 0, maxLength: 2 }),
  mixed: fc.option(fc.boolean(), { nil: null }),
});

/** A config with one entry per GPU (by PCI address), from the wishes; vGPU-only when `vgpuOnly`. */
function configFor(node: SimulatedNode, wishes: GpuWish[], vgpuOnly: boolean): ReturnType<typeof configOf> | null {
  const lines: string[] = [];
  node.gpus.forEach((g, i) => {
    const w = wishes[i % wishes.length]!;
    const use = vgpuOnly ? (w.use === 'skip' ? 'skip' : 'vgpu') : w.use;
    if (use === 'skip') return;
    lines.push(`- pci-addresses: ["${g.pf.addr}"]`);
    if (use !== 'vgpu') {
      lines.push(`  mode: ${use}`);
      return;
    }
    const facts = board(g.model.key);
    // Small counts most of the time, so that many plans are accepted; up to 33 to hit the limits.
    const chosen = new Map<string, number>();
    for (const p of w.profiles) {
      const f = facts.profiles[p.pick % facts.profiles.length]!;
      const count = p.count > 8 ? p.count : Math.min(p.count, f.maxInstances);
      chosen.set(f.profile, Math.max(1, count));
    }
    if (w.mixed !== null && facts.framework === 'sriov') lines.push(`  mixed-sizes: ${w.mixed}`);
    if (chosen.size === 0) lines.push('  vgpu-devices: {}');
    else {
      lines.push('  vgpu-devices:');
      for (const [p, n] of chosen) lines.push(`    ${p}: ${n}`);
    }
  });
  if (lines.length === 0) return null;
  try {
    return configOf(lines.join('\n'));
  } catch (err) {
    // The parser already refuses some mixes (time-sliced with MIG-backed in one entry): no plan, nothing to write.
    if (isConfigError(err)) return null;
    throw err;
  }
}

/** VF and mdev IDs with a vGPU configured, and passthrough PFs: what a VM can hold. */
function holdable(node: SimulatedNode): string[] {
  const out: string[] = [];
  for (const g of node.gpus) {
    for (const v of g.vfs) if (v.typeId) out.push(v.fn.addr);
    for (const m of g.mdevs.keys()) out.push(m);
    if (g.pf.driver && /vfio/.test(g.pf.driver)) out.push(g.pf.addr);
  }
  return out;
}

const scenario = fc.record({
  groups: fc.array(gpuGroup, { minLength: 1, maxLength: 3 }),
  initial: fc.array(wish, { minLength: 1, maxLength: 4 }),
  target: fc.array(wish, { minLength: 1, maxLength: 4 }),
  holdMask: fc.array(fc.boolean(), { minLength: 0, maxLength: 40 }),
  withHolds: fc.boolean(),
});

const seen = { accepted: 0, rejected: 0, withHolds: 0, blocked: 0 };
const RUNS = Number(process.env.VMGPU_PROPERTY_RUNS ?? 120);
// A fixed seed in npm test, so the coverage check below is the same on every run (at 120 runs a
// random seed reaches the held-device branch too rarely about one run in twenty); explore with
// VMGPU_PROPERTY_SEED=<n> VMGPU_PROPERTY_RUNS=<many>.
const SEED = Number(process.env.VMGPU_PROPERTY_SEED ?? 20260512);

void test('random nodes, configs and in-use sets: capacity, idempotence, in-use devices untouched, rejected plans write nothing', async () => {
  await fc.assert(
    fc.asyncProperty(scenario, async (s) => {
      const node = sim({ gpus: s.groups, vgpuHostDriver: true });
      // A random starting layout (only when it is valid), so plans meet existing vGPUs.
      const start = configFor(node, s.initial, true);
      if (start) {
        const { plan } = await planOn(node, start);
        if (plan.errors.length === 0) {
          const r = await applyOn(node, plan);
          assert.equal(r.failure, null, `setting up the start layout failed: ${r.failure?.message}`);
        }
      }
      const held = s.withHolds ? holdable(node).filter((_, i) => s.holdMask[i % Math.max(1, s.holdMask.length)] ?? false) : [];
      for (const h of held) node.hold(h);
      const target = configFor(node, s.target, false);
      if (!target) return;

      const { inv, plan } = await planOn(node, target);
      const writesBefore = node.writes();
      const statesBefore = deviceStates(node);

      if (plan.errors.length) {
        seen.rejected++;
        assert.deepEqual(plan.actions, [], 'a rejected plan has no actions');
        for (const e of plan.errors) assert.match(e.where, /^test\.yaml:\d+:\d+: vgpu-configs\.c\[\d+\]$/, 'every error says where');
        await assert.rejects(applyOn(node, plan), ApplyError);
        assert.equal(node.writes(), writesBefore, 'a rejected plan wrote something');
        assert.deepEqual(deviceStates(node), statesBefore);
        return;
      }
      seen.accepted++;

      // Capacity of what the plan wants, per GPU, from the board facts (independent of the planner's code).
      for (const o of plan.gpus) {
        if (o.mode !== 'vgpu') continue;
        const g = inv.gpus.find((x) => x.pci.address === o.gpu)!;
        const b = boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId)!;
        let fb = 0;
        let n = 0;
        for (const [p, count] of Object.entries(o.want)) {
          const f = b.profiles.find((x) => x.profile === p);
          assert.ok(f, `${p} is a profile of ${b.board}`);
          assert.ok(count <= f.maxInstances, `${count} x ${p} exceeds max instances ${f.maxInstances}`);
          // A MIG-backed vGPU's memory is its GPU instance's share, which names round up (H200X-3-71C x 2 on
          // 141 GB): the instances bound them, checked against the card's MIG placements below.
          fb += f.migBacked ? 0 : f.framebufferMiB * count;
          n += count;
        }
        assert.ok(fb <= b.framebufferMiB, `${o.gpu}: ${fb} MiB wanted, board has ${b.framebufferMiB}`);
        if (g.pci.sriov && (b.framework === 'sriov' || b.mdevOnVfs)) assert.ok(n <= g.pci.sriov.totalVfs, `${n} vGPUs > ${g.pci.sriov.totalVfs} VFs`);
        if (new Set(Object.keys(o.want).map((p) => b.profiles.find((x) => x.profile === p)!.migBacked)).size > 1) assert.fail('time-sliced and MIG-backed mixed');
        if (b.mig && Object.keys(o.want).some((p) => b.profiles.find((x) => x.profile === p)!.migBacked)) {
          const needs = Object.entries(o.want).flatMap(([p, count]) => Array.from({ length: Math.ceil(count / vgpusPerInstance(b.mig!, b.profiles.find((x) => x.profile === p)!)) }, () => instanceProfileFor(b.mig!, p)!));
          assert.notEqual(placeInstances(b.mig, [], needs), null, `${o.gpu}: the card cannot hold ${needs.map((x) => x.name).join(', ')}`);
        }
      }

      const res = await applyOn(node, plan);
      assert.equal(res.failure, null, `the driver refused a planned step: ${res.failure?.message}`);

      // Held devices: same state, and no write names them.
      const statesAfter = deviceStates(node);
      for (const h of held) {
        assert.equal(statesAfter.get(h), statesBefore.get(h), `held device ${h} changed`);
        for (const w of node.writeLog().slice(writesBefore)) {
          assert.ok(!w.path.includes(h) && w.data.trim() !== h, `a write touched held device ${h}: ${w.path} <- ${JSON.stringify(w.data)}`);
        }
      }
      if (held.length) seen.withHolds++;
      if (res.blocked.length) seen.blocked++;

      // Idempotence: planning again finds nothing to do, applying again writes nothing.
      const again = await planOn(node, target);
      assert.deepEqual(again.plan.errors, []);
      assert.deepEqual(again.plan.actions, [], 'a second plan still has actions');
      const w2 = node.writes();
      const res2 = await applyOn(node, again.plan);
      assert.equal(res2.failure, null);
      assert.equal(node.writes(), w2, 'a second apply wrote something');

      if (held.length === 0) {
        // `assert` passes and the layout is exactly the requested one.
        assert.deepEqual(again.plan.blocked, [], 'nothing is in use, yet changes are blocked');
        assert.deepEqual(res.blocked, []);
        const want: Record<string, string[]> = {};
        for (const g of node.gpus) {
          const o = plan.gpus.find((x) => x.gpu === g.pf.addr)!;
          want[g.pf.addr] = o.mode === 'vgpu' ? Object.entries(o.want).flatMap(([p, n]) => Array.from({ length: n }, () => p)).sort() : o.mode === 'untouched' ? layout(node)[g.pf.addr]! : [];
        }
        assert.deepEqual(layout(node), want);
        for (const o of plan.gpus) {
          const g = node.gpus.find((x) => x.pf.addr === o.gpu)!;
          if (o.mode === 'passthrough') assert.match(g.pf.driver ?? '', /vfio/, `${o.gpu} is passed through`);
          if (o.mode === 'host' || o.mode === 'vgpu') assert.equal(g.pf.driver, 'nvidia', `${o.gpu} is on the NVIDIA driver`);
        }
      }
    }),
    { numRuns: RUNS, seed: SEED, includeErrorInReport: true },
  );
  // The generators reach every branch (about 40% accepted, 40% rejected, 7% accepted with held devices).
  assert.ok(seen.accepted >= RUNS / 10 && seen.rejected >= RUNS / 10 && seen.withHolds >= Math.max(1, RUNS / 40), `too few cases of a kind in ${RUNS} runs: ${JSON.stringify(seen)}`);
});
