/**
 * Crash safety on disk (issue 12, defect 4), beside crash.test.ts (which kills
 * the applier before each sysfs write of an in-memory node): here the process
 * dies after every single file-system change of an apply,
 *  - on a simulated node persisted in a directory (`apply --simulate DIR`:
 *    load, plan, apply, save), and
 *  - on a plain directory tree (`apply --sysfs-root DIR`, DiskBackend),
 * and the next run must find a whole state and converge: re-apply, and the
 * node matches the config, with the tree on disk equal to the node's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPlan } from '../../../src/apply/apply.js';
import { readInventory } from '../../../src/inventory/read.js';
import { plan as makePlan } from '../../../src/plan/plan.js';
import type { Plan } from '../../../src/plan/types.js';
import { selectConfig } from '../../../src/spec/load.js';
import type { ConfigFile } from '../../../src/spec/config.js';
import { createSimulatedNode, loadSimulation, materialize, saveSimulation, SIM_SAVING_MARKER, type SimNodeSpec } from '../../../src/simulator/index.js';
import { DiskBackend } from '../../../src/sysfs/disk-backend.js';
import { NoHostTools } from '../../../src/sysfs/host-tools.js';
import { SysfsPort } from '../../../src/sysfs/port.js';
import { assertDiskTreeIs } from '../simulator/helpers.js';
import { runCrashingAfterAsync } from '../../support/crash-fs.js';
import { withScratch } from '../../support/scratch.js';
import { applyOn, assertMatches, configOf, converge, layout, planOn } from '../plan/helpers.js';

const rep = (p: string, n: number) => Array.from({ length: n }, () => p);

/** A fresh copy of a node's directory (links kept as written), for one crash point. */
function copyOf(template: string, to: string): string {
  fs.cpSync(template, to, { recursive: true, verbatimSymlinks: true });
  return to;
}

/** `vmgpu apply --simulate DIR` in this process: load, plan, apply, save. */
async function applySimulated(dir: string, file: ConfigFile): Promise<void> {
  const node = loadSimulation(dir);
  const { plan } = await planOn(node, file);
  assert.deepEqual(plan.errors, []);
  const res = await applyOn(node, plan);
  saveSimulation(node, dir);
  assert.equal(res.failure, null, res.failure?.message);
}

interface SimCase {
  name: string;
  spec: SimNodeSpec;
  after: ConfigFile;
  expect: string[];
}

const simCases: SimCase[] = [
  {
    name: 'T4 mdev: T4-2Q x8 -> T4-4Q x4',
    spec: { gpus: [{ model: 'T4', mode: 'mdev-vgpu', profiles: rep('T4-2Q', 8) }] },
    after: configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 4'),
    expect: rep('T4-4Q', 4),
  },
];

for (const c of simCases) {
  void test(`killed after every file-system change of apply --simulate, the next apply converges: ${c.name}`, async (t) => {
    await withScratch('vmgpu-crash-sim-', async (dir) => {
      const template = path.join(dir, 'template');
      materialize(createSimulatedNode(c.spec), template);
      const fresh = (name: string) => copyOf(template, path.join(dir, name));
      const counting = fresh('count');
      const total = (await runCrashingAfterAsync(Infinity, () => applySimulated(counting, c.after))).steps;
      assert.ok(total > 10, `the apply makes ${total} file-system changes`);
      let marked = 0;
      for (let k = 0; k < total; k++) {
        const d = fresh(`k${k}`);
        assert.ok((await runCrashingAfterAsync(k, () => applySimulated(d, c.after))).crashed, `k=${k}: killed`);
        if (fs.existsSync(path.join(d, SIM_SAVING_MARKER))) marked++;
        // The next run: whatever state it finds, apply converges and the tree follows.
        await applySimulated(d, c.after);
        const node = loadSimulation(d);
        await assertMatches(node, c.after);
        assert.deepEqual(Object.values(layout(node)), [c.expect], `k=${k}: exactly the requested vGPUs`);
        assert.equal(fs.existsSync(path.join(d, SIM_SAVING_MARKER)), false, `k=${k}: the marker is gone`);
        assertDiskTreeIs(d, node, `k=${k}`);
        fs.rmSync(d, { recursive: true });
      }
      t.diagnostic(`${total} crash points, ${total} converged, ${marked} left the tree marked half saved`);
    });
  });
}

/** `vmgpu plan` / `apply --sysfs-root DIR` on a plain tree: inventory and plan from the files, writes through DiskBackend. */
function treePort(dir: string): SysfsPort {
  return new SysfsPort(new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') }));
}

function planOnTree(port: SysfsPort, file: ConfigFile): Plan {
  const name = file.configs[0]!.name;
  const inv = readInventory(port, { kernelRelease: '6.8.0-49-generic' });
  return makePlan(inv, file, { name, entries: selectConfig(file, name), line: 0 }, { nodeId: 'test-node', inUse: new Map(), vfioDriverFor: () => 'vfio-pci' });
}

async function applyOnTree(dir: string, file: ConfigFile): Promise<void> {
  const port = treePort(dir);
  const plan = planOnTree(port, file);
  assert.deepEqual(plan.errors, []);
  const res = await applyPlan(plan, { port, tools: new NoHostTools('a test tree'), sleep: async () => {} });
  assert.equal(res.failure, null, res.failure?.message);
}

interface TreeCase {
  name: string;
  profiles: string[];
  after: ConfigFile;
}

/**
 * A plain tree has no driver: a write changes a file and nothing else (creatable
 * lists stay as they were materialised). So the cases are the changes that are
 * pure attribute writes: types set on free VFs, and types cleared.
 */
const treeCases: TreeCase[] = [
  { name: 'L4: free VFs -> L4-4Q x4', profiles: [], after: configOf('- devices: all\n  vgpu-devices:\n    L4-4Q: 4') },
  { name: 'L4: L4-2Q x4 -> none', profiles: rep('L4-2Q', 4), after: configOf('- devices: all\n  vgpu-devices: {}') },
];

for (const c of treeCases) {
  void test(`killed after every file-system change of apply on a plain tree, values are whole and the next apply converges: ${c.name}`, async (t) => {
    await withScratch('vmgpu-crash-tree-', async (dir) => {
      const template = path.join(dir, 'template');
      const spec: SimNodeSpec = { gpus: [{ model: 'L4', mode: 'sriov-vgpu', profiles: c.profiles }] };
      const node = createSimulatedNode(spec);
      materialize(node, template);
      // The same change on the simulator, for the IDs the files may hold: before or after, nothing else.
      const ref = createSimulatedNode(spec);
      await converge(ref, c.after);
      const ids = new Set([...ref.gpus[0]!.vfs.map((v) => String(v.typeId)), ...node.gpus[0]!.vfs.map((v) => String(v.typeId))]);
      const vfFiles = (d: string) => node.gpus[0]!.vfs.map((v) => path.join(d, 'sys/bus/pci/devices', v.fn.addr, 'nvidia/current_vgpu_type'));
      const fresh = (name: string) => copyOf(template, path.join(dir, name));
      const counting = fresh('count');
      const total = (await runCrashingAfterAsync(Infinity, () => applyOnTree(counting, c.after))).steps;
      assert.ok(total >= 8, `the apply makes ${total} file-system changes`);
      for (let k = 0; k < total; k++) {
        const d = fresh(`k${k}`);
        assert.ok((await runCrashingAfterAsync(k, () => applyOnTree(d, c.after))).crashed, `k=${k}: killed`);
        for (const f of vfFiles(d)) {
          const v = fs.readFileSync(f, 'utf8').trim();
          assert.ok(ids.has(v), `k=${k}: ${f} holds ${JSON.stringify(v)}, not a whole type ID`);
        }
        await applyOnTree(d, c.after);
        const again = planOnTree(treePort(d), c.after);
        assert.deepEqual(again.errors, []);
        assert.deepEqual(again.actions, [], `k=${k}: the tree does not match after the re-apply`);
        fs.rmSync(d, { recursive: true });
      }
      t.diagnostic(`${total} crash points, ${total} converged`);
    });
  });
}
