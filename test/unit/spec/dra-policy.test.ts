import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/spec/load.js';
import { serializeConfig } from '../../../src/spec/serialize.js';
import { lines, oneProblem, withEntry } from './helpers.js';

test('mode: dra selects GPUs for the DRA driver and takes no vgpu-devices', () => {
  const f = parseConfig(withEntry('devices: [1]', 'mode: dra'), 'c.yaml');
  assert.equal(f.configs[0]!.entries[0]!.mode, 'dra');
  const p = oneProblem(withEntry('devices: all', 'mode: dra', 'vgpu-devices: {L40S-12Q: 1}'));
  assert.match(p.message, /mode dra takes no vGPUs/);
});

test('a dra: section is read with every key; a file may hold only it', () => {
  const f = parseConfig(lines('version: v1', 'dra:', '  profiles: [L40S-12Q, "H100-*C"]', '  max-instances: 4', '  passthrough: false', '  allocation: shared'), 'c.yaml');
  assert.deepEqual(f.dra, { profiles: ['L40S-12Q', 'H100-*C'], maxInstances: 4, passthrough: false, allocation: 'shared' });
  assert.deepEqual(f.configs, []);
  assert.equal(parseConfig(lines('version: v1', 'dra: {}'), 'c.yaml').dra?.profiles, null, 'empty section: defaults');
});

test('dra: mistakes are positioned and say what is expected', () => {
  assert.match(oneProblem(lines('version: v1', 'dra:', '  allocation: groups')).message, /expected one of auto, compatibility-groups, shared, pinned, got the string "groups"/);
  assert.match(oneProblem(lines('version: v1', 'dra:', '  max-instances: 0')).message, /a whole number from 1 to 1024/);
  const bad = oneProblem(lines('version: v1', 'dra:', '  profiles: ["L40S 12Q"]'));
  assert.equal(bad.line, 3);
  assert.match(bad.message, /not a profile name or pattern/);
  assert.match(oneProblem(lines('version: v1', 'dra:', '  profile: [L40S-12Q]')).message, /unknown key "profile"; did you mean "profiles"\?/);
  assert.match(oneProblem(lines('version: v1', 'dra:', '  profiles: []')).message, /list at least one profile/);
});

test('the dra: section survives serializeConfig', () => {
  const text = lines('version: v1', 'vgpu-configs:', '  c:', '    - devices: all', '      mode: dra', 'dra:', '  profiles: ["L40S-*Q"]', '  allocation: pinned');
  const f = parseConfig(text, 'c.yaml');
  const again = parseConfig(serializeConfig(f), 'c.yaml');
  assert.deepEqual(again.dra, f.dra);
  assert.equal(again.configs[0]!.entries[0]!.mode, 'dra');
});
