// The vmgpu.io/managed mark (managed.ts): patched only when the Node differs, a label removal as a
// merge-patch null, reflected into the agent's copy; and nothing served on a container node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { LABEL_MANAGED, ManagedMark, servedInventory } from '../../../../src/serve/agent/managed.js';
import type { Kube } from '../../../../src/serve/kube/kube.js';
import { memoryLogger } from '../../../../src/serve/kube/logger.js';
import { createSimulatedNode } from '../../../../src/simulator/index.js';
import { readInventory } from '../../../../src/inventory/read.js';

const quiet = { log: memoryLogger(), event: () => {} };

function fakeKube(fail = false): { kube: Kube; patches: unknown[] } {
  const patches: unknown[] = [];
  const core = {
    patchNode: async (req: { name: string; body: unknown }) => {
      if (fail) throw new Error('nodes "n1" is forbidden');
      patches.push(req.body);
      return {};
    },
  };
  return { kube: { core } as unknown as Kube, patches };
}

void test('the mark is patched only when the Node differs; removal is a null; our copy follows', async () => {
  const node: V1Node = { metadata: { name: 'n1', labels: { 'kubernetes.io/hostname': 'n1' } } };
  const { kube, patches } = fakeKube();
  const mark = new ManagedMark({ kube, nodeName: 'n1', node: () => node, ...quiet });
  assert.equal(mark.present(), false);
  assert.equal(await mark.set(false), false, 'absent already: no patch');
  assert.equal(await mark.set(true), true);
  assert.equal(await mark.set(true), false, 'the copy says it is there: no second patch');
  assert.equal(mark.present(), true);
  assert.equal(await mark.set(false), true);
  assert.deepEqual(patches, [{ metadata: { labels: { [LABEL_MANAGED]: 'true' } } }, { metadata: { labels: { [LABEL_MANAGED]: null } } }]);
  assert.deepEqual(node.metadata?.labels, { 'kubernetes.io/hostname': 'n1' }, 'other labels untouched');
});

void test('a refused patch throws and leaves the copy as it was; no API server, no Node: nothing to do', async () => {
  const node: V1Node = { metadata: { name: 'n1' } };
  const mark = new ManagedMark({ kube: fakeKube(true).kube, nodeName: 'n1', node: () => node, ...quiet });
  await assert.rejects(mark.set(true), /forbidden/);
  assert.equal(mark.present(), false);
  assert.equal(await new ManagedMark({ kube: null, nodeName: 'n1', node: () => node, ...quiet }).set(true), false);
  assert.equal(await new ManagedMark({ kube: fakeKube().kube, nodeName: 'n1', node: () => null, ...quiet }).set(true), false);
});

void test('a container node serves no GPU; the VM workloads serve what the node has', () => {
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }] });
  const inv = readInventory(sim.port, {});
  assert.deepEqual(servedInventory(inv, 'container').gpus, []);
  for (const w of ['vm-vgpu', 'vm-passthrough', 'vm-dra', null] as const) assert.equal(servedInventory(inv, w), inv);
});
