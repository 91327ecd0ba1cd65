/**
 * Issue 12, defect 6: every name is checked against its grammar before any
 * file is opened. `sim hold DIR 'deadbeef-/../../x'` used to exit 0 and store
 * the string; import lines with path characters were refused only after the
 * node's inventory had been read. Each case below names a directory that does
 * not exist: if the name were checked after a file access, the error would be
 * about that directory instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSimulatedNode, loadSimulation, materialize } from '../../../src/simulator/index.js';
import { InvalidNameError } from '../../../src/sysfs/errors.js';
import { describeRun, REPO, runCli } from './run-cli.js';

const NOWHERE = '/nonexistent-vmgpu-dir';

void test('sim hold/release: the device name is checked before the state file is read', () => {
  for (const [id, kind] of [
    ['deadbeef-/../../x', 'mdev UUID'],
    ['0000:18:00.4/../../etc', 'PCI address'],
    ['../../etc/passwd', 'PCI address'],
  ] as const) {
    for (const verb of ['hold', 'release']) {
      const r = runCli(['sim', verb, NOWHERE, id]);
      assert.equal(r.code, 2, `${verb} ${id}: ${describeRun(r)}`);
      assert.match(r.stderr, new RegExp(`^vmgpu: invalid ${kind} `), `${verb} ${id}`);
    }
  }
});

void test('sim hold of a bad name leaves the node as it was; a good one is stored canonical', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-door-'));
  try {
    materialize(createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] }), dir);
    assert.equal(runCli(['sim', 'hold', dir, 'deadbeef-/../../x']).code, 2);
    assert.deepEqual(loadSimulation(dir).heldDevices(), []);
    const ok = runCli(['sim', 'hold', dir, '18:00.4']);
    assert.equal(ok.code, 0, describeRun(ok));
    assert.deepEqual(loadSimulation(dir).heldDevices(), ['0000:18:00.4']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

void test('the simulator itself refuses a held name that is neither a PCI address nor an mdev UUID', () => {
  const n = createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  assert.throws(() => n.hold('deadbeef-/../../x'), InvalidNameError);
  assert.throws(() => n.release('../x'), InvalidNameError);
  n.hold('6F3A1E2C-0000-4000-8000-000000000001');
  assert.deepEqual(n.heldDevices(), ['6f3a1e2c-0000-4000-8000-000000000001']);
});

void test('import cozystack: lines and --name are checked before the node is read', () => {
  const lines = path.join(REPO, 'test/fixtures/configs/engine/cozystack-path-chars.txt');
  const r = runCli(['import', 'cozystack', lines, '--sysfs-root', NOWHERE]);
  assert.equal(r.code, 2, describeRun(r));
  assert.match(r.stderr, /cozystack-path-chars\.txt:2:1: "0000:18:00\.4\/\.\.\/\.\.\/\.\.\/\.\.\/etc" is not a PCI bus ID/);
  const good = path.join(REPO, 'test/fixtures/configs/cozystack-profiles.txt');
  const n = runCli(['import', 'cozystack', good, '--name', '../x', '--sysfs-root', NOWHERE]);
  assert.equal(n.code, 2, describeRun(n));
  assert.match(n.stderr, /^vmgpu: --name: "\.\.\/x" is not a valid config name/);
});

void test('export --name is checked before the node is read', () => {
  const r = runCli(['export', '--name', 'a: b', '--sysfs-root', NOWHERE]);
  assert.equal(r.code, 2, describeRun(r));
  assert.match(r.stderr, /^vmgpu: --name: "a: b" is not a valid config name/);
});

void test('guest cloud-init: --feature-type is checked before the token is read, and the token read is bounded', () => {
  const r = runCli(['guest', 'cloud-init', '--token', `${NOWHERE}/token`, '--feature-type', '3']);
  assert.equal(r.code, 2, describeRun(r));
  assert.match(r.stderr, /^vmgpu: --feature-type "3": use 0/);
  const z = runCli(['guest', 'cloud-init', '--token', '/dev/zero'], { timeoutMs: 20_000 });
  assert.equal(z.code, 2, describeRun(z));
  assert.match(z.stderr, /^vmgpu: cannot read the token \/dev\/zero: it holds more than 64 KiB/);
});
