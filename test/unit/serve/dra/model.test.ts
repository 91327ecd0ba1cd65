/**
 * The published model against the driver's own capacity rule. A small
 * allocator here applies the scheduler's rules for counters (a device that
 * allows multiple allocations is charged once), shared capacity and
 * compatibility groups (KEP-4815, KEP-5075, KEP-5963 as the 1.37 allocator
 * implements them); for random nodes, policies, models and claim streams,
 * whatever it lets through must be planned without error and applied on the
 * simulated driver (which enforces NVIDIA's rules on its own) without a
 * refusal. The real scheduler runs the same streams in
 * test/integration/dra-allocation.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyPlan } from '../../../../src/apply/apply.js';
import type { Inventory } from '../../../../src/inventory/types.js';
import type { PreparedDevice } from '../../../../src/serve/dra/checkpoint.js';
import type { AllocationModel, DeviceJson, Pool } from '../../../../src/serve/dra/devices.js';
import { planGpu } from '../../../../src/serve/dra/gpu-plan.js';
import { deviceName, parseDeviceName, profileKey } from '../../../../src/serve/dra/names.js';
import { knownProfiles } from '../../../../src/plan/facts.js';
import { nodePool } from '../../../../src/serve/dra/node-pool.js';
import { resolvePolicy } from '../../../../src/serve/dra/policy.js';
import { slotAddress } from '../../../../src/serve/dra/offers.js';
import { MAX_DEVICES_PER_SLICE, slicesOf } from '../../../../src/serve/dra/slices.js';
import { createSimulatedNode, SimHostTools } from '../../../../src/simulator/index.js';
import { rig } from './helpers.js';

const qty = (v: string): number => (v.endsWith('Mi') ? Number(v.slice(0, -2)) : Number(v));

/** The scheduler's rules for one node's pool, applied to one device at a time. */
class Allocator {
  readonly shares = new Map<string, number>();
  private readonly byName: Map<string, DeviceJson>;
  constructor(private readonly pool: Pool) {
    this.byName = new Map(pool.devices.map((d) => [d.name, d]));
  }
  tryAllocate(name: string): boolean {
    const d = this.byName.get(name)!;
    const n = this.shares.get(name) ?? 0;
    if (n > 0 && !d.allowMultipleAllocations) return false;
    if (d.allowMultipleAllocations && n + 1 > qty(d.capacity!.vgpus!.value)) return false;
    const charged = d.allowMultipleAllocations && n > 0;
    for (const c of d.consumesCounters ?? []) {
      const set = this.pool.counterSets.find((s) => s.name === c.counterSet)!;
      const co = [...this.shares.keys()].map((k) => this.byName.get(k)!).filter((o) => o.name !== name && o.consumesCounters?.some((x) => x.counterSet === c.counterSet));
      const groups = (o: DeviceJson) => o.consumesCounters!.find((x) => x.counterSet === c.counterSet)!.compatibilityGroups ?? [];
      const mine = c.compatibilityGroups ?? [];
      if (mine.length === 0 ? co.some((o) => groups(o).length > 0) : co.reduce((acc, o) => acc.filter((gr) => groups(o).includes(gr)), mine).length === 0) return false;
      if (charged) continue;
      for (const [counter, need] of Object.entries(c.counters)) {
        const used = co.reduce((sum, o) => sum + qty(o.consumesCounters!.find((x) => x.counterSet === c.counterSet)!.counters[counter]?.value ?? '0'), 0);
        if (used + qty(need.value) > qty(set.counters[counter]!.value)) return false;
      }
    }
    this.shares.set(name, n + 1);
    return true;
  }
}

/** What the driver would prepare for the allocations on one GPU (VFs handed out in order for shared devices). */
function prepared(inv: Inventory, gpu: string, shares: Map<string, number>): PreparedDevice[] {
  const g = inv.gpus.find((x) => x.pci.address === gpu)!;
  const out: PreparedDevice[] = [];
  let nextVf = 0;
  for (const [name, n] of shares) {
    const ref = parseDeviceName(name)!;
    if (ref.gpu !== gpu) continue;
    const profile = ref.profileKey === null ? null : knownProfiles(g).find((p) => profileKey(p) === ref.profileKey)!;
    for (let i = 0; i < n; i++) {
      const base = { requests: ['gpu'], pool: 'n', device: name, shareId: null, gpu, params: null, profile };
      if (profile === null) out.push({ ...base, target: { kind: 'whole', address: gpu } });
      else if (g.model.vgpuFramework === 'sriov') {
        const index = ref.slot ?? nextVf++;
        out.push({ ...base, target: { kind: 'vf', address: slotAddress(g, index)!, index } });
      } else out.push({ ...base, target: { kind: 'mdev', uuid: '', parent: '' } });
    }
  }
  return out;
}

const MODELS = ['L40S', 'L4', 'H100', 'H200', 'T4', 'A100-40GB', 'A10'];
const ALLOCATION: AllocationModel[] = ['compatibility-groups', 'shared', 'pinned'];

test('whatever the scheduler may allocate from the pool, the planner accepts and the simulated driver applies', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...MODELS),
      fc.constantFrom(...ALLOCATION),
      fc.option(fc.integer({ min: 1, max: 32 }), { nil: null }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
      async (model, allocation, maxInstances, picks) => {
        const sim = createSimulatedNode({ gpus: [{ model, count: 1, mode: model === 'T4' || model.startsWith('A10') ? 'mdev-vgpu' : 'sriov-vgpu', vfsEnabled: false }] });
        const r = rig({ gpus: [] }, sim);
        const inv = await r.inventory();
        const policy = resolvePolicy({ profiles: null, maxInstances, passthrough: true, allocation: 'auto' });
        const { pool } = nodePool({ inv, draGpus: new Set(inv.gpus.map((g) => g.pci.address)), policy, model: allocation, records: [], pcieRoot: () => null });
        if (pool.devices.length === 0) return;
        const alloc = new Allocator(pool);
        for (const p of picks) alloc.tryAllocate(pool.devices[p % pool.devices.length]!.name);
        const g = inv.gpus[0]!;
        const devices = prepared(inv, g.pci.address, alloc.shares);
        const plan = planGpu(inv, g, devices, { inUse: new Map(), nodeId: 'n', vfioDriver: 'vfio-pci' });
        assert.deepEqual(plan.errors, [], `${model}/${allocation}: ${[...alloc.shares].join(' ')}`);
        const res = await applyPlan(plan, { port: sim.port, tools: new SimHostTools(sim), sleep: async () => {} });
        assert.equal(res.failure, null, `${model}/${allocation}: the driver refused ${JSON.stringify(res.failure)}`);
      },
    ),
    { numRuns: 120 },
  );
});

test('the default policy keeps 8 GPUs to a sane number of devices; slices respect the API limits', async () => {
  const counts: Record<string, number> = {};
  for (const model of ['L40S', 'H100', 'A100-40GB']) {
    const sim = createSimulatedNode({ gpus: [{ model, count: 8, mode: model.startsWith('A100') ? 'mdev-vgpu' : 'sriov-vgpu' }] });
    const inv = await rig({ gpus: [] }, sim).inventory();
    for (const allocation of ALLOCATION) {
      const { pool } = nodePool({ inv, draGpus: new Set(inv.gpus.map((g) => g.pci.address)), policy: resolvePolicy(null), model: allocation, records: [], pcieRoot: () => null });
      counts[`${model}/${allocation}`] = pool.devices.length;
      const slices = slicesOf('node-a', pool, 1);
      for (const s of slices) {
        assert.ok((s.spec.devices?.length ?? 0) <= MAX_DEVICES_PER_SLICE);
        assert.ok((s.spec.sharedCounters?.length ?? 0) <= 8);
        assert.ok(!(s.spec.devices && s.spec.sharedCounters), 'counters and devices in separate slices');
        for (const d of s.spec.devices ?? []) assert.ok(Object.keys(d.attributes).length + Object.keys(d.capacity ?? {}).length <= 32);
      }
    }
  }
  assert.deepEqual(counts, {
    'L40S/compatibility-groups': 8 * (8 + 6 + 4 + 3 + 2 + 1 + 1),
    'L40S/shared': 8 * 7,
    'L40S/pinned': 8 * 8,
    // C profiles of at most 8 per GPU, time-sliced (10C x8 ... 80C x1), and the whole GPU. MIG mode is off on a
    // fresh H100, so its driver lists no MIG-backed type, and only what the driver lists is offered.
    'H100/compatibility-groups': 8 * (8 + 5 + 4 + 2 + 1 + 1),
    'H100/shared': 8 * 6,
    'H100/pinned': 8 * 8,
    // An A100 on mdev lists its types per parent once VFs exist; with none listed yet the board's facts are
    // offered: time-sliced and MIG-backed (1-5C x7 ... 7-40C x1).
    'A100-40GB/compatibility-groups': 8 * (8 + 5 + 4 + 2 + 1 + 7 + 1 + 4 + 3 + 2 + 1 + 1 + 1),
    'A100-40GB/shared': 8 * 13,
    'A100-40GB/pinned': 8 * 8,
  });
});

test('device names are DNS labels that say the GPU, the profile and the slot', () => {
  assert.equal(deviceName('0000:18:00.0', 'L40S-12Q'), 'gpu-0000-18-00-0-l40s-12q');
  assert.equal(deviceName('0000:18:00.0', 'A100-1-5C', 3), 'gpu-0000-18-00-0-a100-1-5c-s3');
  assert.equal(deviceName('0000:18:00.0', null), 'gpu-0000-18-00-0-whole');
  assert.deepEqual(parseDeviceName('gpu-0000-18-00-0-a100-1-5c-s3'), { gpu: '0000:18:00.0', profileKey: 'a100-1-5c', slot: 3 });
  assert.deepEqual(parseDeviceName('gpu-0000-18-00-0-whole'), { gpu: '0000:18:00.0', profileKey: null, slot: null });
  assert.equal(parseDeviceName('gpu-0000-18-00-0-whole-s1'), null);
  assert.equal(parseDeviceName('nvidia-gpu-0'), null);
});

test('an allowlist picks profiles by name or pattern in its order; pinned takes the first', async () => {
  const inv = await rig({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] }).inventory();
  const all = new Set(inv.gpus.map((g) => g.pci.address));
  const policy = resolvePolicy({ profiles: ['L40S-24Q', 'L40S-1*Q'], maxInstances: null, passthrough: false, allocation: 'auto' });
  const shared = nodePool({ inv, draGpus: all, policy, model: 'shared', records: [], pcieRoot: () => null }).pool;
  assert.deepEqual(shared.devices.map((d) => d.attributes.profile), [{ string: 'L40S-24Q' }, { string: 'L40S-1Q' }, { string: 'L40S-12Q' }, { string: 'L40S-16Q' }]);
  const pinned = nodePool({ inv, draGpus: all, policy, model: 'pinned', records: [], pcieRoot: () => null }).pool;
  assert.deepEqual(pinned.devices.map((d) => d.name), ['gpu-0000-18-00-0-l40s-24q-s0', 'gpu-0000-18-00-0-l40s-24q-s1']);
  assert.deepEqual(pinned.counterSets, []);
  assert.deepEqual(pinned.devices[1]!.attributes['resource.kubernetes.io/pciBusID'], { string: slotAddress(inv.gpus[0]!, 1) }, 'a slot device names the VF the VM will get');
});
