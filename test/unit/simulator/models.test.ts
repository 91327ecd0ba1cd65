/**
 * The simulator can be every board vmgpu has profile facts for, and names its
 * types the way that board's driver does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBoards, boardForDevice } from '../../../src/model/boards.js';
import { stripVendorPrefix } from '../../../src/model/profile.js';
import { createSimulatedNode, simModels } from '../../../src/simulator/index.js';
import { boardOf, simTypes } from '../../../src/simulator/hardware.js';

void test('every board vmgpu has facts for has a simulated model, with the board\'s framework', () => {
  const simulated = simModels().map((m) => boardOf(m));
  for (const b of allBoards()) {
    assert.ok(simulated.includes(b), `${b.model} (${b.deviceIds.join(', ')}) has no simulated model`);
  }
  for (const m of simModels()) {
    const b = boardOf(m);
    assert.equal(m.framework, b.framework, m.key);
    if (b.maxVfs !== null) assert.ok(m.totalVfs >= b.maxVfs, `${m.key}: ${m.totalVfs} VFs, fewer than the ${b.maxVfs} its profiles need`);
  }
});

void test('each model offers exactly its board\'s profiles, named as its driver names them', () => {
  for (const m of simModels()) {
    const types = simTypes(m, '595.58.02');
    assert.deepEqual(types.map((t) => stripVendorPrefix(t.name)), boardOf(m).profiles.map((p) => p.profile), m.key);
  }
  const pro6000 = simModels().find((m) => m.deviceId === '2bb5')!;
  assert.ok(simTypes(pro6000, '595.58.02').some((t) => t.name === 'NVIDIA RTX Pro 6000 Blackwell DC-48Q'), 'the RTX PRO 6000 driver prints the board name before the profile');
});

void test('a simulated Blackwell node reads back as the model vmgpu knows, with SR-IOV VFs', () => {
  for (const dev of ['2bb5', '2bb9', '2c3a', '2901', '2941']) {
    const m = simModels().find((x) => x.deviceId === dev)!;
    assert.ok(m, dev);
    const node = createSimulatedNode({ gpus: [{ model: m.key, mode: 'sriov-vgpu' }] });
    assert.equal(node.gpus[0]!.vfs.length, m.totalVfs, m.key);
    assert.equal(boardOf(m), boardForDevice(dev));
  }
});
