/**
 * The cluster catalog (issue 11, defect 1): a node whose cards are all full on
 * first start, with no nvidia-smi and a cold cache, names its vGPUs from what
 * an agent on another node with the same card and driver learned first-hand;
 * a name two nodes disagree on, one that is not a profile of the card, or one
 * that clashes with the node's own names stays unknown (fail closed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSimulated } from '../../../../src/machine/simulated.js';
import { planOn } from '../../../../src/machine/plan-on.js';
import { sharedNameProblem, withSharedNames, type SharedNames } from '../../../../src/machine/shared-names.js';
import { cardKey, cardsOf, docKey, mergeDocs, ownDocs, parseDoc, publishPatch } from '../../../../src/serve/agent/catalog-doc.js';
import { parseConfig } from '../../../../src/spec/load.js';
import { createSimulatedNode, simModels } from '../../../../src/simulator/index.js';

const FILE = parseConfig('version: v1\nvgpu-configs:\n  l40s-24q:\n    - devices: all\n      vgpu-devices:\n        L40S-24Q: 2\n', 'config.yaml');
const fromData = (data: Record<string, string>): SharedNames => ({ names: (d, v) => mergeDocs(data).names.get(cardKey(d, v)) ?? new Map() });

/** Node A has free VFs (its creatable lists name every type); node B is full from the start, without nvidia-smi. */
async function twoNodes() {
  const a = openSimulated(createSimulatedNode({ nvidiaSmi: false, gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] }));
  const full = createSimulatedNode({ nvidiaSmi: false, gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-24Q', 'L40S-24Q'] }] });
  const invA = await a.inventory();
  const data: Record<string, string> = {};
  for (const doc of ownDocs(invA, 'node-a')) data[docKey('node-a', doc.deviceId, doc.driverVersion)] = JSON.stringify(doc);
  const typeId = full.gpus[0]!.vfs[0]!.typeId;
  return { full, data, typeId, invA };
}

void test('a full node names its vGPUs from another node with the same card and driver, and then matches its config', async () => {
  const { full, data } = await twoNodes();
  const alone = await planOn(openSimulated(full), { file: FILE, name: 'l40s-24q', nodeId: 'node-b' });
  assert.equal(alone.plan.undetermined.length, 4, 'alone, node B cannot name its types');
  const b = withSharedNames(openSimulated(full), fromData(data));
  const { inv, plan } = await planOn(b, { file: FILE, name: 'l40s-24q', nodeId: 'node-b' });
  assert.deepEqual(plan.undetermined, []);
  assert.deepEqual(plan.actions, [], 'the node already matches: "No changes"');
  const vf = inv.gpus[0]!.vfs[0]!;
  assert.equal(vf.currentProfile, 'L40S-24Q');
  assert.equal(inv.gpus[0]!.catalog.find((t) => t.id === vf.currentTypeId)?.source, 'cluster', 'the name says where it came from');
});

void test('two nodes disagreeing on a name leave the type unknown; so does a name that is not a profile of the card', async () => {
  const { full, data, typeId } = await twoNodes();
  const [key] = Object.keys(data);
  const doc = JSON.parse(data[key!]!) as { types: { id: number; name: string }[]; node: string };
  const liar = (name: string, node: string) => ({ ...doc, node, types: doc.types.map((t) => (t.id === typeId ? { ...t, name } : t)) });
  for (const [what, other] of [
    ['another node names it another L40S profile', liar('NVIDIA L40S-48Q', 'node-c')],
    ['another node gives its name to another ID', { ...doc, node: 'node-c', types: [{ id: typeId + 1000, name: doc.types.find((t) => t.id === typeId)!.name }] }],
  ] as const) {
    const shared = { ...data, [docKey(other.node, '26b9', 'x')]: JSON.stringify(other) };
    assert.equal(mergeDocs(shared).conflicts.length > 0, true, what);
    const { plan } = await planOn(withSharedNames(openSimulated(full), fromData(shared)), { file: FILE, name: 'l40s-24q', nodeId: 'node-b' });
    assert.equal(plan.undetermined.length, 4, `${what}: the type stays unknown`);
  }
  const wrongBoard = { [docKey('node-c', '26b9', 'x')]: JSON.stringify(liar('NVIDIA A100-10C', 'node-c')) };
  const { plan } = await planOn(withSharedNames(openSimulated(full), fromData(wrongBoard)), { file: FILE, name: 'l40s-24q', nodeId: 'node-b' });
  assert.equal(plan.undetermined.length, 4, 'a name of another card is never taken');
});

void test('entries are checked before use: grammar, fields, size', () => {
  const ok = { format: 1, node: 'node-a', deviceId: '26b9', driverVersion: '595.58.02', types: [{ id: 7, name: 'NVIDIA L40S-24Q' }] };
  assert.equal(typeof parseDoc(JSON.stringify(ok)), 'object');
  for (const [what, bad] of [
    ['a name outside the grammar', { ...ok, types: [{ id: 7, name: 'NVIDIA L40S-24Q; rm -rf /' }] }],
    ['a name that is no profile', { ...ok, types: [{ id: 7, name: 'hello' }] }],
    ['an ID that is no type ID', { ...ok, types: [{ id: -1, name: 'NVIDIA L40S-24Q' }] }],
    ['a device ID that is not one', { ...ok, deviceId: '../../etc' }],
    ['a node name that is not one', { ...ok, node: 'Node A' }],
    ['another format', { ...ok, format: 2 }],
  ] as const) {
    assert.equal(typeof parseDoc(JSON.stringify(bad)), 'string', what);
  }
  assert.match(parseDoc(' '.repeat(65 * 1024)) as string, /larger than/);
  assert.deepEqual(mergeDocs({ x: 'not json' }).rejected, [{ key: 'x', why: 'not JSON' }]);
});

void test('publishing: what teaches or contradicts is written, what the cluster knows is not, and entries for cards gone are removed', async () => {
  const { data, invA } = await twoNodes();
  const mine = ownDocs(invA, 'node-a');
  assert.equal(publishPatch(data, mine, 'node-a', cardsOf(invA)), null, 'nothing new: no write');
  assert.equal(publishPatch(data, mine, 'node-d', cardsOf(invA)), null, 'another node with the same knowledge writes nothing either');
  const first = publishPatch({}, mine, 'node-a', cardsOf(invA))!;
  assert.deepEqual(Object.keys(first), Object.keys(data));
  const gone = publishPatch(data, [], 'node-a', new Set());
  assert.deepEqual(gone, { [Object.keys(data)[0]!]: null }, 'the entry of a card this node no longer has is removed');
  const cluster = invA.gpus[0]!.catalog.map((t) => ({ ...t, source: 'cluster' as const }));
  assert.deepEqual(ownDocs({ ...invA, gpus: [{ ...invA.gpus[0]!, catalog: cluster }] }, 'node-a'), [], 'names learned from the cluster are never published again');
});

void test('every name an SR-IOV card of the simulator shows passes the check a learned name must pass (the check refuses no real name)', async () => {
  for (const model of simModels().filter((m) => m.framework === 'sriov')) {
    const inv = await openSimulated(createSimulatedNode({ gpus: [{ model: model.key, count: 1, mode: 'sriov-vgpu' }] })).inventory();
    const g = inv.gpus[0]!;
    assert.ok(g.catalog.length > 0, model.key);
    for (const t of g.catalog) assert.equal(sharedNameProblem(g, t.id, t.name), null, `${model.key}: ${t.name}`);
  }
});
