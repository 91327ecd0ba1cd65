// What the agent is asked to do: desired-state selection from the labels and its persistence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desiredFromLabels, resolveDesired, LABEL_CONFIG, LABEL_WORKLOAD } from '../../../../src/serve/agent/desired.js';
import { StateStore, desiredKey } from '../../../../src/serve/agent/state.js';

const FILE = { text: 'version: v1\nvgpu-configs:\n  a:\n    - devices: all\n      vgpu-devices:\n        L40S-1Q: 32\n', fileName: 'c.yaml' };

void test('desired: label, default, workload modes and bad values', () => {
  const d = desiredFromLabels({ [LABEL_CONFIG]: 'a' }, FILE, undefined);
  assert.ok(d.ok && d.desired.configName === 'a' && d.desired.workload === 'vm-vgpu');
  const def = desiredFromLabels({}, FILE, 'a');
  assert.ok(def.ok && def.desired.configName === 'a');
  const idle = desiredFromLabels({}, FILE, undefined);
  assert.ok(!idle.ok && idle.idle);
  const c = desiredFromLabels({ [LABEL_WORKLOAD]: 'container', [LABEL_CONFIG]: 'a' }, null, undefined);
  assert.ok(c.ok && c.desired.workload === 'container');
  assert.equal(resolveDesired(c.desired).config.entries[0]!.mode, 'host');
  const p = desiredFromLabels({ [LABEL_WORKLOAD]: 'vm-passthrough' }, null, undefined);
  assert.ok(p.ok && resolveDesired(p.desired).config.entries[0]!.mode === 'passthrough');
  const bad = desiredFromLabels({ [LABEL_WORKLOAD]: 'gaming' }, FILE, undefined);
  assert.ok(!bad.ok && /gaming/.test(bad.reason));
  const noFile = desiredFromLabels({ [LABEL_CONFIG]: 'a' }, null, undefined);
  assert.ok(!noFile.ok && /no config file/.test(noFile.reason));
  assert.throws(() => resolveDesired({ workload: 'vm-vgpu', configName: 'nope', configText: FILE.text, fileName: 'c.yaml' }), /nope/);
});

void test('desired key: same inputs same key; the file matters only for vm-vgpu', () => {
  const a = { workload: 'vm-vgpu' as const, configName: 'a', configText: 'x', fileName: 'f' };
  assert.equal(desiredKey(a), desiredKey({ ...a, fileName: 'g' }));
  assert.notEqual(desiredKey(a), desiredKey({ ...a, configText: 'y' }));
  const c = { workload: 'container' as const, configName: null, configText: 'x', fileName: 'f' };
  assert.equal(desiredKey(c), desiredKey({ ...c, configText: 'y' }));
});

void test('state store: atomic save and load, corrupt file is reported with the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-state-'));
  try {
    const s = new StateStore(join(dir, 'nested'));
    assert.equal(s.load(), null);
    const saved = s.save({ workload: 'vm-vgpu', configName: 'a', configText: FILE.text, fileName: 'c.yaml' });
    assert.deepEqual(s.load(), saved);
    assert.deepEqual(readdirSync(join(dir, 'nested')), ['agent-state.json'], 'no temp file left');
    rmSync(s.file);
    writeFileSync(s.file, '{"version":1');
    assert.throws(() => s.load(), /corrupt.*delete it/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
