import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boardForDevice } from '../../../src/model/boards.js';
import { instanceProfileFor, placeInstances, vgpusPerInstance, type MigGeometry } from '../../../src/model/mig.js';

const h100 = boardForDevice('2331')!.mig!;
const a100 = boardForDevice('20f1')!.mig!;
const rtx = boardForDevice('2bb5')!.mig!;
const need = (g: MigGeometry, ...names: string[]) => names.map((n) => g.profiles.find((p) => p.name === n)!);

void test('MIG-backed vGPU names map to the GPU instance profile of their slices, memory and attribute', () => {
  assert.equal(instanceProfileFor(h100, 'H100-1-10C')?.name, '1g.10gb');
  assert.equal(instanceProfileFor(h100, 'H100-1-20C')?.name, '1g.20gb');
  assert.equal(instanceProfileFor(h100, 'H100-1-10CME')?.name, '1g.10gb+me');
  assert.equal(instanceProfileFor(h100, 'H100-3-40C')?.name, '3g.40gb');
  assert.equal(instanceProfileFor(a100, 'A100-4-20C')?.name, '4g.20gb');
  assert.equal(instanceProfileFor(rtx, 'DC-1-8C')?.name, '1g.24gb+gfx');
  assert.equal(instanceProfileFor(rtx, 'DC-2-12Q')?.name, '2g.48gb+gfx');
  assert.equal(instanceProfileFor(h100, 'H100-20C'), undefined, 'time-sliced');
  assert.equal(vgpusPerInstance(rtx, { profile: 'DC-1-8C', maxInstances: 12 }), 3);
  assert.equal(vgpusPerInstance(h100, { profile: 'H100-1-10C', maxInstances: 7 }), 1);
});

void test('placement finds the one layout of 3g + 2g + 1g + 1g on eight slots (3g at 4, as -lgipp allows)', () => {
  assert.deepEqual(placeInstances(h100, [], need(h100, '1g.10gb', '1g.10gb', '2g.20gb', '3g.40gb')), [2, 3, 0, 4]);
  assert.deepEqual(placeInstances(h100, [], need(h100, ...Array<string>(7).fill('1g.10gb'))), [0, 1, 2, 3, 4, 5, 6]);
});

void test('placement refuses what the card cannot hold, and counts instances already there', () => {
  assert.equal(placeInstances(h100, [], need(h100, '3g.40gb', '3g.40gb', '1g.10gb')), null);
  assert.equal(placeInstances(h100, [], need(h100, '1g.10gb+me', '1g.10gb+me')), null, 'one +me instance per GPU');
  assert.equal(placeInstances(h100, [{ profile: '4g.40gb', start: 0 }], need(h100, '4g.40gb')), null);
  assert.deepEqual(placeInstances(h100, [{ profile: '3g.40gb', start: 0 }], need(h100, '3g.40gb')), [4]);
  assert.equal(placeInstances(h100, [{ profile: '1g.10gb', start: 4 }], need(h100, '3g.40gb', '3g.40gb')), null, 'a kept instance in the way');
});
