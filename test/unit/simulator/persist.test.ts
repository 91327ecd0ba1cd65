/**
 * The simulated node on disk (issue 12 defect 4, issue 13 item 6): a command
 * that changes nothing writes nothing; a change rewrites only the entries that
 * differ; the tree and the state file never disagree without the tree saying
 * so; a `--sysfs-root` reader of a half-saved tree is told, not misled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openMachine } from '../../../src/cli/context.js';
import { exitCodeOf } from '../../../src/cli/exit-codes.js';
import {
  createSimulatedNode,
  loadSimulation,
  materialize,
  saveSimulation,
  snapshotNode,
  SIM_EDITED_MARKER,
  SIM_SAVING_MARKER,
  SIM_STATE_FILE,
  simTreeProblem,
} from '../../../src/simulator/index.js';
import type { MdevTypeName, MdevUuid } from '../../../src/sysfs/names.js';
import type { SimulatedNode } from '../../../src/simulator/index.js';
import { runCrashingAfter } from '../../support/crash-fs.js';
import { withScratch } from '../../support/scratch.js';
import { assertDiskTreeIs, pfOf, typeId, vfsOf } from './helpers.js';

const withDir = <T>(f: (dir: string) => T | Promise<T>): Promise<T> => withScratch('vmgpu-persist-', f);

const L40S = { gpus: [{ model: 'L40S', mode: 'sriov-vgpu' as const }] };

void test('a save that changes nothing touches nothing on disk', async () => {
  await withDir((dir) => {
    materialize(createSimulatedNode(L40S), dir);
    const n = loadSimulation(dir);
    n.port.readNvidiaAttr(vfsOf(n)[0]!, 'current_vgpu_type');
    const run = runCrashingAfter(Infinity, () => assert.equal(saveSimulation(n, dir).changed, 0));
    assert.equal(run.steps, 0, 'file-system changes made by a no-op save');
  });
});

void test('a change rewrites only the entries that differ, and the tree then matches the node', async () => {
  await withDir((dir) => {
    materialize(createSimulatedNode(L40S), dir);
    const n = loadSimulation(dir);
    const vf = vfsOf(n)[3]!;
    n.port.writeCurrentVgpuType(vf, typeId(n, 'L40S-12Q'));
    const before = fs.statSync(path.join(dir, 'sys/bus/pci/devices/0000:18:00.0/vendor')).mtimeMs;
    let changed = 0;
    const run = runCrashingAfter(Infinity, () => (changed = saveSimulation(n, dir).changed));
    // current_vgpu_type and placement_id of that VF, and the 32 VFs' creatable_vgpu_types.
    assert.ok(changed > 0 && changed <= 40, `changed ${changed} entries`);
    assert.ok(run.steps <= changed * 4 + 10, `${run.steps} file-system changes for ${changed} entries`);
    assert.equal(fs.statSync(path.join(dir, 'sys/bus/pci/devices/0000:18:00.0/vendor')).mtimeMs, before, 'an unchanged file is not rewritten');
    assertDiskTreeIs(dir, n, 'after the patch');
    assert.deepEqual(snapshotNode(loadSimulation(dir)), snapshotNode(n));
    assert.equal(fs.existsSync(path.join(dir, SIM_SAVING_MARKER)), false);
    // Disabling the VFs removes 32 device directories and their links; enabling them brings them back.
    n.port.writeCurrentVgpuType(vf, 0);
    n.port.writeSriovNumVfs('0000:18:00.0' as never, 0);
    saveSimulation(n, dir);
    assertDiskTreeIs(dir, n, 'after removing the VFs');
    n.port.writeSriovNumVfs('0000:18:00.0' as never, 32);
    saveSimulation(n, dir);
    assertDiskTreeIs(dir, n, 'after adding them again');
  });
});

void test('killed at every point of a save: the state is old or new, and the tree matches it or says it is half saved', async (t) => {
  await withDir((dir) => {
    // A T4 in mdev mode: a small tree (184 entries), so every crash point is cheap to check.
    const template = path.join(dir, 'template');
    materialize(createSimulatedNode({ gpus: [{ model: 'T4', mode: 'mdev-vgpu' }] }), template);
    const oldState = snapshotNode(loadSimulation(template));
    const change = (n: SimulatedNode) => {
      const type = `nvidia-${typeId(n, 'T4-4Q')}` as MdevTypeName;
      for (const u of ['6f3a1e2c-0000-4000-8000-000000000001', '6f3a1e2c-0000-4000-8000-000000000002']) n.port.createMdev(pfOf(n), type, u as MdevUuid);
    };
    const count = (() => {
      const d = path.join(dir, 'count');
      fs.cpSync(template, d, { recursive: true, verbatimSymlinks: true });
      const n = loadSimulation(d);
      change(n);
      return runCrashingAfter(Infinity, () => saveSimulation(n, d)).steps;
    })();
    assert.ok(count > 20, `a save makes ${count} changes`);
    let told = 0;
    for (let k = 0; k < count; k++) {
      const d = path.join(dir, `k${k}`);
      fs.cpSync(template, d, { recursive: true, verbatimSymlinks: true });
      const n = loadSimulation(d);
      change(n);
      assert.ok(runCrashingAfter(k, () => saveSimulation(n, d)).crashed, `k=${k}: the save was killed`);
      const back = loadSimulation(d);
      const state = snapshotNode(back);
      assert.ok(JSON.stringify(state) === JSON.stringify(oldState) || JSON.stringify(state) === JSON.stringify(snapshotNode(n)), `k=${k}: the state is neither old nor new`);
      if (fs.existsSync(path.join(d, SIM_SAVING_MARKER))) {
        // A --sysfs-root reader is told (the CLI's check is tested once, below: it loads the PCI IDs database).
        if (told++ === 0) assert.throws(() => openMachine({ 'sysfs-root': d }), (e: unknown) => exitCodeOf(e) === 5 && /is half saved/.test((e as Error).message), `k=${k}`);
        assert.match(simTreeProblem(d) ?? '', /is half saved/);
      } else {
        assertDiskTreeIs(d, back, `k=${k}`);
      }
      // The next --simulate save repairs the tree from the state, even if nothing changes.
      saveSimulation(back, d);
      assert.equal(fs.existsSync(path.join(d, SIM_SAVING_MARKER)), false);
      assertDiskTreeIs(d, back, `k=${k} after the repair`);
      fs.rmSync(d, { recursive: true });
    }
    assert.ok(told > count / 2, `the marker told ${told} of ${count} readers`);
    t.diagnostic(`${count} crash points: ${told} left the tree marked half saved (readers told), ${count - told} left a tree equal to its state; all repaired`);
  });
});

void test('a write through --sysfs-root marks the tree edited; the next --simulate save rewrites it from the state', async () => {
  await withDir(async (dir) => {
    materialize(createSimulatedNode(L40S), dir);
    const tree = openMachine({ 'sysfs-root': dir, 'state-dir': path.join(dir, 'state') });
    const vf = vfsOf(loadSimulation(dir))[0]!;
    tree.port.writeCurrentVgpuType(vf, 934);
    assert.ok(fs.existsSync(path.join(dir, SIM_EDITED_MARKER)));
    const n = loadSimulation(dir);
    assert.ok(saveSimulation(n, dir).full, 'the save rewrote the tree whole');
    assert.equal(fs.existsSync(path.join(dir, SIM_EDITED_MARKER)), false);
    assertDiskTreeIs(dir, n, 'after the rewrite');
    assert.equal(fs.readFileSync(path.join(dir, 'sys/bus/pci/devices', vf, 'nvidia/current_vgpu_type'), 'utf8'), '0\n');
    assert.ok(fs.existsSync(path.join(dir, SIM_STATE_FILE)));
  });
});

void test('the markers never follow a link planted at their name out of the simulator directory', async () => {
  await withDir(async (dir) => {
    materialize(createSimulatedNode(L40S), path.join(dir, 'sim'));
    const sim = path.join(dir, 'sim');
    const outside = path.join(dir, 'outside.txt');
    fs.writeFileSync(outside, 'not yours\n');
    // The edited marker, written at the first write through --sysfs-root.
    fs.symlinkSync(outside, path.join(sim, SIM_EDITED_MARKER));
    const tree = openMachine({ 'sysfs-root': sim, 'state-dir': path.join(dir, 'state') });
    tree.port.writeCurrentVgpuType(vfsOf(loadSimulation(sim))[0]!, 934);
    assert.equal(fs.readFileSync(outside, 'utf8'), 'not yours\n', 'the edited marker followed the link');
    // The saving marker, written at the start of every --simulate save.
    fs.symlinkSync(outside, path.join(sim, SIM_SAVING_MARKER));
    saveSimulation(loadSimulation(sim), sim);
    assert.equal(fs.readFileSync(outside, 'utf8'), 'not yours\n', 'the saving marker followed the link');
    assert.ok(fs.existsSync(outside), 'the file the link named is still there');
  });
});
