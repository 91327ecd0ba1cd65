/**
 * The second safety net needs the host's process view: a VM holds its vGPU by
 * keeping /dev/vfio files open, and only a process in the host PID namespace
 * sees that. Without it (a container without hostPID), vmgpu must not plan
 * changes as if nothing were held: the GPUs it would change are undetermined.
 * The child runs in a new PID namespace with its own /proc, exactly as such a
 * container does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const SCRIPT = `
import { openSimulated } from './src/machine/simulated.js';
import { planOn } from './src/machine/plan-on.js';
import { PciIds } from './src/inventory/pciids.js';
import { createSimulatedNode } from './src/simulator/index.js';
import { parseConfig } from './src/spec/load.js';
import { seesHostProcesses } from './src/sysfs/processes.js';
const sim = createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] }] });
sim.hold(sim.gpus[0].vfs[0].fn.addr);
const file = parseConfig('version: v1\\nvgpu-configs:\\n  c:\\n    - devices: all\\n      vgpu-devices:\\n        L40S-24Q: 2\\n', 't.yaml');
const { plan } = await planOn(openSimulated(sim, { pciIds: PciIds.empty() }), { file, name: 'c', nodeId: 'n' });
console.log(JSON.stringify({ sees: seesHostProcesses(), actions: plan.actions.length, undetermined: plan.undetermined.map((u) => u.reason) }));
`;

function run(prefix: string[]): { sees: boolean; actions: number; undetermined: string[] } {
  const r = spawnSync(prefix[0]!, [...prefix.slice(1), process.execPath, '--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `${prefix.join(' ')} failed (this test needs root and unshare(1)): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

void test('in the host PID namespace the simulated VM is seen: its GPU waits for it, nothing is undetermined', () => {
  const r = run(['env']);
  assert.equal(r.sees, true);
  assert.deepEqual(r.undetermined, []);
  assert.equal(r.actions, 0, 'the held VF keeps the GPU as it is');
});

void test('in a PID namespace of its own (a container without hostPID) vmgpu changes nothing and says why', () => {
  const r = run(['unshare', '--pid', '--fork', '--mount-proc']);
  assert.equal(r.sees, false);
  assert.equal(r.actions, 0);
  assert.ok(r.undetermined.length > 0);
  assert.match(r.undetermined[0]!, /does not see the host's processes/);
});
