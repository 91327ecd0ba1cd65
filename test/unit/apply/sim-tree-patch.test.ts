/**
 * The simulator adds and removes mdevs by patching its file tree instead of
 * rebuilding it (the rebuild per create made the A100 benchmark take seconds).
 * The patched tree must equal a tree built from scratch for the same state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { restoreNode, snapshotNode } from '../../../src/simulator/index.js';
import { dumpTree } from '../simulator/helpers.js';
import { configOf, converge, sim } from '../plan/helpers.js';

void test('mdev create/remove patches give the same tree as a rebuild', async () => {
  for (const model of ['A100', 'T4'] as const) {
    const node = sim({ gpus: [{ model, mode: 'mdev-vgpu', count: 2 }] });
    const steps = model === 'A100' ? ['A100D-10C: 5', 'A100D-10C: 2', 'A100D-20C: 3'] : ['T4-2Q: 6', 'T4-2Q: 3', 'T4-8C: 2'];
    for (const s of steps) {
      node.trees(); // the tree exists, so creates and removes patch it
      await converge(node, configOf(`- devices: all\n  vgpu-devices:\n    ${s}`));
      const fresh = restoreNode(snapshotNode(node));
      for (const root of ['sys', 'dev'] as const) {
        assert.deepEqual(dumpTree(node.backend, root), dumpTree(fresh.backend, root), `${model} after ${s}: ${root} differs from a rebuilt tree`);
      }
    }
  }
});
