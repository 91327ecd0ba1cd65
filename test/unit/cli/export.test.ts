/**
 * `vmgpu export` round trips: a node NVIDIA's keys can describe is written
 * with NVIDIA's keys only (readable by nvidia-vgpu-dm); a node that needs
 * vmgpu's extensions keeps them; vgpu_params survive export -> apply -> export.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportConfig } from '../../../src/cli/export-config.js';
import { parseConfig } from '../../../src/spec/load.js';
import { serializeConfig } from '../../../src/spec/serialize.js';
import type { SimNodeSpec, SimulatedNode } from '../../../src/simulator/index.js';
import { assertMatches, configOf, converge, inventoryOf, layout, sim } from '../plan/helpers.js';
import { nvidiaOnlyProblems } from '../spec/nvidia-schema.js';

async function exported(node: SimulatedNode): Promise<string> {
  const { file } = exportConfig(await inventoryOf(node), 'copy');
  return serializeConfig(file);
}

/** Export `node`, apply the export to a fresh node of `spec`, and check both match it; returns the export. */
async function roundTrip(node: SimulatedNode, spec: SimNodeSpec): Promise<string> {
  const text = await exported(node);
  const file = parseConfig(text, 'exported.yaml');
  await assertMatches(node, file, 'copy');
  const fresh = sim(spec);
  await converge(fresh, file, 'copy');
  assert.deepEqual(layout(fresh), layout(node), 'the export rebuilds the same vGPUs');
  assert.equal(await exported(fresh), text, 'export -> apply -> export gives the same file');
  return text;
}

const L4: SimNodeSpec = { gpus: [{ model: 'L4', count: 3, mode: 'sriov-vgpu' }] };
const T4: SimNodeSpec = { gpus: [{ model: 'T4', count: 2, mode: 'mdev-vgpu' }] };

const plain: { name: string; spec: SimNodeSpec; entries: string; want: string[] }[] = [
  { name: 'one layout on every GPU', spec: L4, entries: '- devices: all\n  vgpu-devices:\n    L4-4Q: 3', want: ['devices: all'] },
  { name: 'two layouts', spec: L4, entries: '- devices: [0, 2]\n  vgpu-devices:\n    L4-4Q: 3\n- devices: [1]\n  vgpu-devices:\n    L4-2Q: 2', want: ['devices: [0, 2]', 'devices: [1]'] },
  { name: 'a GPU left without vGPUs', spec: L4, entries: '- devices: [1]\n  vgpu-devices:\n    L4-8Q: 2', want: ['devices: [0, 2]', 'vgpu-devices: {}', 'devices: [1]'] },
  { name: 'mdev cards', spec: T4, entries: '- devices: all\n  vgpu-devices:\n    T4-4Q: 4', want: ['devices: all'] },
  { name: 'MIG-backed vGPUs of several sizes', spec: { gpus: [{ model: 'H100', count: 1, mode: 'sriov-vgpu' }] }, entries: '- devices: all\n  vgpu-devices:\n    H100-3-40C: 1\n    H100-2-20C: 1\n    H100-1-10C: 2', want: ['devices: all', '"H100-1-10C": 2'] },
];

for (const c of plain) {
  void test(`export of a node without extensions uses NVIDIA's keys only: ${c.name}`, async () => {
    const node = sim(c.spec);
    await converge(node, configOf(c.entries));
    const text = await roundTrip(node, c.spec);
    assert.deepEqual(nvidiaOnlyProblems(text), [], text);
    for (const w of c.want) assert.ok(text.includes(w), `${w} in\n${text}`);
  });
}

void test('export of a node that needs extensions keeps them, and round-trips', async () => {
  const spec: SimNodeSpec = { gpus: [{ model: 'L40S', count: 3, mode: 'sriov-vgpu' }] };
  const node = sim(spec);
  await converge(node, configOf('- devices: [0]\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-12Q: 2\n    L40S-4Q: 3\n- devices: [1]\n  mode: passthrough\n- devices: [2]\n  vgpu-devices:\n    L40S-24Q: 1'));
  const text = await roundTrip(node, spec);
  assert.notDeepEqual(nvidiaOnlyProblems(text), []);
  assert.match(text, /mode: passthrough/);
  assert.match(text, /mixed-sizes: true/);
});

void test('export keeps vgpu-params (SR-IOV and mdev): export -> apply -> export', async () => {
  const spec: SimNodeSpec = { gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }, { model: 'T4', count: 1, mode: 'mdev-vgpu' }] };
  const node = sim(spec);
  await converge(
    node,
    configOf('- devices: [0]\n  vgpu-devices:\n    L40S-12Q: 2\n  vgpu-params:\n    L40S-12Q: {frame_rate_limiter: 0, disable_vnc: 1}\n- devices: [1]\n  vgpu-devices:\n    T4-8Q: 2\n  vgpu-params:\n    T4-8Q: {frame_rate_limiter: 0}'),
  );
  const text = await roundTrip(node, spec);
  const file = parseConfig(text, 'exported.yaml');
  assert.deepEqual(
    file.configs[0]!.entries.map((e) => e.vgpuParams),
    [{ 'L40S-12Q': { frame_rate_limiter: '0', disable_vnc: '1' } }, { 'T4-8Q': { frame_rate_limiter: '0' } }],
  );
});

void test('export says so when vGPUs of one type carry different vgpu_params, and keeps the common case out of the file', async () => {
  const spec: SimNodeSpec = { gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] };
  const node = sim(spec);
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 2\n  vgpu-params:\n    L40S-12Q: {frame_rate_limiter: 0}'));
  node.gpus[0]!.vfs.find((v) => v.typeId)!.params = 'frame_rate_limiter=1';
  const { file, notes } = exportConfig(await inventoryOf(node), 'copy');
  assert.deepEqual(file.configs[0]!.entries[0]!.vgpuParams, {});
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /L40S-12Q .* differ.*vgpu_params/);
});
