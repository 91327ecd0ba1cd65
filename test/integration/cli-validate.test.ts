/**
 * `vmgpu validate` as a user runs it: the built CLI against a simulated node
 * (`vmgpu sim create`, then --simulate DIR). What the report says about the
 * config (from -f/-c, or the agent's record in the state dir) and the device
 * plugin sockets, and which bad inputs refuse to run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StateStore } from '../../src/serve/agent/state.js';
import { pluginSocketName } from '../../src/serve/deviceplugin/naming.js';
import type { ValidationReport } from '../../src/serve/agent/validator.js';
import { vmgpu, type CliResult } from './vmgpu-cli.js';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cli-validate-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

const CONFIG = `version: v1
vgpu-configs:
  twelve:
    - devices: all
      vgpu-devices:
        L40S-12Q: 4
  six:
    - devices: all
      vgpu-devices:
        L40S-6Q: 8
`;

// One L40S already carved into four L40S-12Q, as config `twelve` asks.
const SIM = path.join(TMP, 'sim');
const FILE = path.join(TMP, 'config.yaml');
const NO_PLUGIN_DIR = path.join(TMP, 'no-plugin-dir');
fs.writeFileSync(FILE, CONFIG);
assert.equal(vmgpu(['sim', 'create', '--out', SIM, '--model', 'L40S', '--gpus', '1', '--profiles', 'L40S-12Q,L40S-12Q,L40S-12Q,L40S-12Q']).code, 0, 'sim create');

function validate(args: string[], stateDir = path.join(TMP, 'no-state')): CliResult {
  return vmgpu(['validate', '--simulate', SIM, '--state-dir', stateDir, '--json', ...args], { NODE_NAME: '', KUBERNETES_SERVICE_HOST: '', DEFAULT_VGPU_CONFIG: '' });
}

function report(r: CliResult): ValidationReport & { by: Record<string, ValidationReport['checks'][number]> } {
  const rep = JSON.parse(r.stdout) as ValidationReport;
  return { ...rep, by: Object.fromEntries(rep.checks.map((c) => [c.check, c])) };
}

void test('validate -f -c: a node that matches passes; one that differs fails and says by how much', () => {
  const same = validate(['-f', FILE, '-c', 'twelve', '--device-plugin-dir', NO_PLUGIN_DIR]);
  assert.equal(same.code, 0, same.stderr + same.stdout);
  const ok = report(same);
  assert.equal(ok.by['profiles-applied']?.status, 'passed');
  assert.match(ok.by['profiles-applied']!.message, /matches config twelve/);
  assert.equal(ok.by['device-plugins-registered']?.status, 'skipped', 'no plugin directory: not a Kubernetes node');
  assert.equal(ok.by['node-allocatable']?.status, 'skipped');

  const other = validate(['-f', FILE, '-c', 'six', '--device-plugin-dir', NO_PLUGIN_DIR]);
  assert.equal(other.code, 1);
  const bad = report(other);
  assert.equal(bad.by['profiles-applied']?.status, 'failed');
  assert.match(bad.by['profiles-applied']!.message, /differs from config six by \d+ change/);
});

void test('validate: the plugin sockets that exist count as registered, under the config’s resource names', () => {
  const dir = path.join(TMP, 'plugins');
  fs.mkdirSync(dir, { recursive: true });
  const custom = `version: v1
vgpu-configs:
  twelve:
    - devices: all
      vgpu-devices:
        L40S-12Q: 4
      resource-names:
        L40S-12Q: example.com/vgpu-12q
`;
  const file = path.join(TMP, 'custom.yaml');
  fs.writeFileSync(file, custom);
  const before = report(validate(['-f', file, '-c', 'twelve', '--device-plugin-dir', dir]));
  assert.equal(before.by['device-plugins-registered']?.status, 'failed');
  assert.match(before.by['device-plugins-registered']!.message, /example\.com\/vgpu-12q/);
  fs.writeFileSync(path.join(dir, pluginSocketName('example.com/vgpu-12q')), '');
  const after = report(validate(['-f', file, '-c', 'twelve', '--device-plugin-dir', dir]));
  assert.equal(after.by['device-plugins-registered']?.status, 'passed');
  assert.match(after.by['device-plugins-registered']!.message, /1 resource\(s\) registered with the kubelet: example\.com\/vgpu-12q/);
});

void test('validate without -f: the agent’s record in the state dir is the config; none, or a corrupt one, skips the check with the reason', () => {
  const none = report(validate(['--device-plugin-dir', NO_PLUGIN_DIR]));
  assert.equal(none.by['profiles-applied']?.status, 'skipped');
  assert.match(none.by['profiles-applied']!.message, /no config: pass -f FILE -c NAME/);

  const stateDir = path.join(TMP, 'state');
  new StateStore(stateDir).save({ workload: 'vm-vgpu', configName: 'six', configText: CONFIG, fileName: 'config.yaml' });
  const recorded = report(validate(['--device-plugin-dir', NO_PLUGIN_DIR], stateDir));
  assert.equal(recorded.by['profiles-applied']?.status, 'failed');
  assert.match(recorded.by['profiles-applied']!.message, /differs from config six/);

  const corrupt = path.join(TMP, 'corrupt-state');
  fs.mkdirSync(corrupt);
  fs.writeFileSync(path.join(corrupt, 'agent-state.json'), '{"version":1');
  const broken = report(validate(['--device-plugin-dir', NO_PLUGIN_DIR], corrupt));
  assert.equal(broken.by['profiles-applied']?.status, 'skipped');
  assert.match(broken.by['profiles-applied']!.message, /the config cannot be planned: .*corrupt/);
});

void test('validate refuses bad input with exit 2: -f without -c, a config name the file lacks', () => {
  const noName = validate(['-f', FILE]);
  assert.equal(noName.code, 2);
  assert.match(noName.stderr, /-f FILE needs -c NAME/);
  const unknown = validate(['-f', FILE, '-c', 'nope']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /nope/);
});
