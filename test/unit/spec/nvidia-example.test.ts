/**
 * NVIDIA's own config file works unchanged: its shapes parse, every config in
 * it validates, and its `default` (the GPU Operator's default) plans on a
 * simulated node of every model vmgpu knows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBoards, boardProfile, boardsForProfile } from '../../../src/model/boards.js';
import { parseConfig, selectConfig } from '../../../src/spec/load.js';
import { simModels } from '../../../src/simulator/index.js';
import { boardOf } from '../../../src/simulator/hardware.js';
import { applyOn, convergesOnFresh, freshNode, planOn } from '../plan/helpers.js';
import { nvidiaExample, nvidiaExampleYaml } from './nvidia-example.js';

const file = parseConfig(nvidiaExampleYaml(), 'config-example.yaml');

void test("NVIDIA's example parses unchanged: 711 configs, `default` with its duplicated device filters", () => {
  assert.equal(file.configs.length, 711);
  const def = selectConfig(file, 'default');
  assert.equal(def.length, nvidiaExample().default.length);
  const filters = def.map((e) => e.deviceFilter!.map((f) => f.deviceId).join());
  assert.equal(filters.filter((d) => d === '1e78').length, 2, 'RTX8000P and RTX6000P share 0x1E78');
  assert.equal(filters.filter((d) => d === '25b6').length, 2, 'A16 and A2 share 0x25B6');
  assert.deepEqual(selectConfig(file, 'DC-1-24CGFX')[0]!.vgpuDevices, [{ profile: 'DC-1-24CGFX', original: 'DC-1-24CGFX', count: 4 }]);
});

for (const m of simModels()) {
  void test(`NVIDIA's \`default\` plans and applies on a simulated ${m.key} node`, () => convergesOnFresh(m, file, 'default'));
}

void test("vmgpu's profile facts agree with NVIDIA's vgpuConfig on every board both know", () => {
  const nvidia = new Map(nvidiaExample().configs.map((c) => [c.profile, c.count]));
  const disagree: string[] = [];
  for (const [profile, count] of nvidia) {
    const boards = boardsForProfile(profile);
    if (boards.length === 0) continue; // a board vmgpu has no facts for
    const counts = boards.map((b) => boardProfile(b, profile)?.maxInstances).filter((n) => n !== undefined);
    if (!counts.includes(count)) disagree.push(`${profile}: NVIDIA ${count}, vmgpu ${counts.join('/') || 'none'}`);
  }
  assert.deepEqual(disagree, []);
  // ... and vmgpu lists no Q or C size from vgpuConfig that NVIDIA's file lacks.
  for (const b of allBoards()) {
    for (const f of b.profiles) {
      if ((f.basis ?? b.basis) === 'vgpuconfig' && /[QC](ME)?$/.test(f.profile)) assert.ok(nvidia.has(f.profile), `${b.model}: ${f.profile} is not in vgpuConfig`);
    }
  }
});

// GFX-attributed names (DC-1-24QGFX) plan here; applying them needs a GPU instance made with the
// graphics attribute and the driver's name without it: MIG-backed vGPU end to end (issue 15, item 2).
void test('every config of NVIDIA\'s example for a board vmgpu simulates plans on that board, and applies unless it needs MIG instances', async () => {
  const failures: string[] = [];
  let planned = 0;
  for (const c of file.configs) {
    if (c.name === 'default') continue;
    const model = simModels().find((m) => boardProfile(boardOf(m), c.name) !== undefined);
    if (!model) continue;
    const node = freshNode(model, 1);
    const { plan } = await planOn(node, file, c.name);
    planned++;
    if (plan.errors.length) failures.push(`${c.name} on ${model.key}: ${plan.errors.map((e) => e.message).join('; ')}`);
    else if (boardProfile(boardOf(model), c.name)!.profile === c.name) {
      const result = await applyOn(node, plan);
      if (result.failure) failures.push(`${c.name} on ${model.key}: apply: ${result.failure.message}`);
      else if (result.blocked.length) failures.push(`${c.name} on ${model.key}: apply blocked: ${result.blocked.map((b) => b.reason).join('; ')}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(planned > 250, `only ${planned} configs planned`);
});
