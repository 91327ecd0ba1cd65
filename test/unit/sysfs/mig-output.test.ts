import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGpuInstances, parseMigMode } from '../../../src/sysfs/mig-output.js';

void test('nvidia-smi MIG mode query: current and pending; [N/A] cannot be told', () => {
  assert.deepEqual(parseMigMode('Enabled, Enabled\n'), { current: true, pending: true });
  assert.deepEqual(parseMigMode('Disabled, Enabled\n'), { current: false, pending: true });
  assert.equal(parseMigMode('[N/A], [N/A]\n'), undefined);
  assert.equal(parseMigMode(''), undefined);
});

void test('nvidia-smi mig -lgi: one row per GPU instance, attributes kept, borders and headers ignored', () => {
  const out = [
    '+-------------------------------------------------------+',
    '| GPU instances:                                        |',
    '| GPU   Name             Profile  Instance   Placement  |',
    '|                          ID       ID       Start:Size |',
    '|=======================================================|',
    '|   0  MIG 3g.40gb          9        2          4:4     |',
    '+-------------------------------------------------------+',
    '|   0  MIG 1g.10gb+me      20        9          0:1     |',
    '+-------------------------------------------------------+',
    '|   0  MIG 1g.24gb+gfx     47        3          1:1     |',
    '+-------------------------------------------------------+',
  ].join('\n');
  assert.deepEqual(parseGpuInstances(out), [
    { profile: '1g.10gb+me', profileId: 20, id: 9, start: 0, size: 1 },
    { profile: '1g.24gb+gfx', profileId: 47, id: 3, start: 1, size: 1 },
    { profile: '3g.40gb', profileId: 9, id: 2, start: 4, size: 4 },
  ]);
  assert.deepEqual(parseGpuInstances('No GPU instances found: Not Found\n'), []);
});
