// Issue 11 on a real Kubernetes node (test/harness/gpu-node.ts), with the agent run exactly as
// the Helm chart renders it (its flags, env, mounts, hostPID and securityContext), a real
// kubelet and its pod-resources API:
// - defect 3: the chart's agent sees a VM that holds a VF through the host PID namespace, even
//   one the kubelet does not list, and leaves its GPU alone; without the host PID namespace it
//   can see no VM, so it changes nothing and says why;
// - defect 1: a card the Cozystack shell loader filled (seed 001), with no nvidia-smi and a cold
//   catalog, is never cleared; once another node's agent shares the names in the cluster
//   catalog, the agent names its vGPUs, changes nothing ("No changes") and advertises them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { startGpuNode, NAMESPACE, type GpuNode } from '../harness/gpu-node.js';
import { ANNOTATION_STATUS, LABEL_CONFIG, LABEL_STATE, LABEL_WORKLOAD } from '../../src/serve/agent/desired.js';
import { docKey, ownDocs } from '../../src/serve/agent/catalog-doc.js';
import { openSimulated } from '../../src/machine/simulated.js';
import { createSimulatedNode, loadSimulation, saveSimulation } from '../../src/simulator/index.js';
import { loadSeed001 } from '../support/shell-loader.js';
import { eventually } from '../support/wait.js';
import { L40S_12Q_24Q } from './agent-helpers.js';

const CONFIG = L40S_12Q_24Q;
const T = { timeout: 240_000 };
const CATALOG = 'vmgpu-catalog';

interface Status {
  state: string;
  config: string;
  reason: string;
  blocked: { device: string; reason: string; waitsFor: string[] }[];
  undetermined: { device: string; reason: string; fix: string }[];
}

function helpers(g: () => GpuNode) {
  const node = () => g().core.readNode({ name: g().node.name });
  return {
    state: async () => (await node()).metadata?.labels?.[LABEL_STATE],
    status: async () => JSON.parse((await node()).metadata?.annotations?.[ANNOTATION_STATUS] ?? 'null') as Status | null,
    allocatable: async (r: string) => Number((await node()).status?.allocatable?.[r] ?? '0'),
    simState: () => readFileSync(join(g().simDir, 'vmgpu-sim.json'), 'utf8'),
  };
}

describe('defect 3: the chart-rendered agent sees VMs through the host PID namespace', { timeout: 900_000 }, () => {
  let g: GpuNode;
  const h = helpers(() => g);
  before(async () => {
    g = await startGpuNode({ config: CONFIG, labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'l40s-12q' } });
  });
  after(() => g?.stop());

  test('a VF a VM holds, that no pod lists, keeps its vGPU and its GPU is left as it is; the status names the process', T, async () => {
    await eventually('state success', async () => (await h.state()) === 'success');
    const vf = Object.entries(await g.vfProfiles()).find(([, p]) => p === 'L40S-12Q')![0];
    // A VM outside the kubelet's view: QEMU holding the VF's VFIO group open on the host.
    await g.agent.stop();
    assert.equal(g.vmgpu(['sim', 'hold', g.simDir, vf]).code, 0);
    await g.restartAgent();
    const before = h.simState();
    await g.setLabels({ [LABEL_CONFIG]: 'l40s-24q' });
    const s = await eventually('state pending for l40s-24q', async () => {
      const x = await h.status();
      return x?.config === 'l40s-24q' && x.state === 'pending' ? x : null;
    });
    assert.ok(s.blocked.some((b) => b.waitsFor.includes(vf) && /qemu-system-x86_64/.test(b.reason)), `the status names the VM's process: ${JSON.stringify(s.blocked)}`);
    assert.equal(h.simState(), before, 'nothing on the GPU changed: its free vGPUs stay too');
    assert.equal((await g.vfProfiles())[vf], 'L40S-12Q');
  });

  test('the same agent without the host PID namespace (agent.hostPID=false) sees no VM, so it changes nothing and says why', T, async () => {
    await g.agent.stop();
    assert.equal(g.vmgpu(['sim', 'release', g.simDir, Object.entries(await g.vfProfiles()).find(([, p]) => p === 'L40S-12Q')![0]]).code, 0);
    const before = h.simState();
    await g.restartAgent(
      (ds) => {
        ds.spec!.template.spec!.hostPID = false; // what agent.hostPID=false renders (helm.test.ts checks the value)
        return ds;
      },
      { ready: false }, // blind, it reports failed: alive, never Ready
    );
    const s = await eventually('state failed, blind', async () => {
      const x = await h.status();
      return x?.state === 'failed' && x.config === 'l40s-24q' ? x : null;
    });
    assert.match(s.reason, /host PID namespace/);
    assert.ok(s.undetermined.length > 0, JSON.stringify(s));
    assert.equal(h.simState(), before, 'nothing written while the agent cannot see VMs');
    await g.agent.stop();
    await g.restartAgent();
    await eventually('with hostPID again, the released VF lets the change finish', async () => {
      const x = await h.status();
      return x?.state === 'success' && x.config === 'l40s-24q';
    });
    assert.equal(Object.values(await g.vfProfiles()).filter((p) => p === 'L40S-24Q').length, 2);
  });
});

describe('defect 1: a card the shell loader filled, no nvidia-smi, a cold catalog', { timeout: 900_000 }, () => {
  let g: GpuNode;
  const h = helpers(() => g);
  before(async () => {
    g = await startGpuNode({
      config: CONFIG,
      labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'l40s-24q' },
      sim: ['--model', 'L40S', '--gpus', '1', '--mode', 'sriov-vgpu', '--no-nvidia-smi'],
      prepare: (dir) => {
        const sim = loadSimulation(dir);
        loadSeed001(sim, sim.gpus[0]!.pf.addr);
        saveSimulation(sim, dir);
      },
      agentReady: false, // it reports failed until a name source appears: alive, not Ready
    });
  });
  after(() => g?.stop());

  test('the agent clears nothing and reports failed with the fix; nothing is advertised', T, async () => {
    const before = h.simState();
    const s = await eventually('state failed: types it cannot name', async () => {
      const x = await h.status();
      return x?.state === 'failed' && x.undetermined.length > 0 ? x : null;
    });
    assert.equal(s.undetermined.length, 2, JSON.stringify(s.undetermined));
    assert.match(s.reason, /cannot name/);
    assert.match(s.reason, /agent\.driverRoot/);
    assert.equal(h.simState(), before, 'no vGPU was cleared or re-typed');
    assert.equal(await h.allocatable('nvidia.com/L40S-24Q'), 0);
  });

  test('another node with the same card shares the names: the agent names them, changes nothing, and the kubelet advertises both vGPUs', T, async () => {
    const before = h.simState();
    // What an agent on a node with a free L40S and the same driver publishes (catalog-doc.ts).
    const other = await openSimulated(createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] })).inventory();
    const data = Object.fromEntries(ownDocs(other, 'gpu-node-b').map((d) => [docKey('gpu-node-b', d.deviceId, d.driverVersion), JSON.stringify(d)]));
    await g.core.patchNamespacedConfigMap({ namespace: NAMESPACE, name: CATALOG, body: { data } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await eventually('state success without a write', async () => (await h.state()) === 'success');
    assert.equal(h.simState(), before, 'No changes: the node already matched');
    await eventually('Node allocatable nvidia.com/L40S-24Q=2', async () => (await h.allocatable('nvidia.com/L40S-24Q')) === 2);
  });
});
