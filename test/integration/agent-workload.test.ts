// The GPU Operator's workload label, end to end against a real API server (issue 15, item 3):
// a node moved from vm-vgpu or vm-passthrough to `container` gets its GPUs back on the host
// driver (free devices at once, one a VM holds once it is released), advertises nothing
// meanwhile, and the agent takes its vmgpu.io/managed mark off only then (the chart's
// affinity keeps the agent on the node while the mark is there: node-workload.test.ts).
// A simulated 2 x L40S node, the Go fake kubelet and pod-resources server; the agent in-process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startFakeKubelet, startPodResources, type FakeKubelet, type FakePodResources } from '../harness/peers.js';
import { createSimulatedNode, type SimulatedNode } from '../../src/simulator/index.js';
import { openSimulated } from '../../src/machine/simulated.js';
import type { Machine } from '../../src/machine/machine.js';
import { Agent } from '../../src/serve/agent/agent.js';
import { LABEL_MANAGED } from '../../src/serve/agent/managed.js';
import { ANNOTATION_PERMITTED, ANNOTATION_STATUS, LABEL_CONFIG, LABEL_WORKLOAD } from '../../src/serve/agent/desired.js';
import { Kube, loadKubeConfig } from '../../src/serve/kube/kube.js';
import { memoryLogger } from '../../src/serve/kube/logger.js';
import { adminClient, type Admin, ConfigMount, getNode, nodeEvents, setLabels, TWO_CONFIGS, vfProfiles } from './agent-helpers.js';
import { eventually, sleep } from '../support/wait.js';
import { checkPciAddress } from '../../src/model/pci.js';

const NODE = 'gpu-node-w';
const T = { timeout: 180_000 };

describe('the workload label: a node moved to container', { timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let admin: Admin;
  let kubelet: FakeKubelet;
  let pods: FakePodResources;
  let dir: string;
  let sim: SimulatedNode;
  let machine: Machine;
  let agent: Agent;

  const labels = async () => (await getNode(admin, NODE)).metadata?.labels ?? {};
  const status = async () => JSON.parse((await getNode(admin, NODE)).metadata?.annotations?.[ANNOTATION_STATUS] ?? 'null') as { state: string; config: string; blocked: { device: string; reason: string }[] } | null;
  const waitStatus = (what: string, pred: (s: NonNullable<Awaited<ReturnType<typeof status>>>) => boolean) =>
    eventually(what, async () => {
      const s = await status();
      return s && pred(s) ? s : null;
    });
  /** Devices of the plugins still streaming to the kubelet (it keeps a stopped plugin's last list, as a real one does for a while). */
  const advertised = async () => (await kubelet.state()).filter((p) => p.streaming).reduce((n, p) => n + p.devices.length, 0);
  const permitted = async () => JSON.parse((await getNode(admin, NODE)).metadata?.annotations?.[ANNOTATION_PERMITTED] ?? 'null') as { pciHostDevices: unknown[]; mediatedDevices: unknown[] } | null;
  const drivers = async () => (await machine.inventory()).gpus.map((g) => g.pci.driver);
  const vfCount = async () => (await machine.inventory()).gpus.reduce((n, g) => n + g.vfs.length, 0);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmgpu-agent-workload-'));
    cp = await startControlPlane();
    admin = adminClient(cp.kubeConfig);
    await cp.createNode(NODE, { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'large' });
    mkdirSync(join(dir, 'device-plugins'));
    kubelet = await startFakeKubelet(join(dir, 'device-plugins'));
    pods = await startPodResources(join(dir, 'pod-resources.sock'), []);
    const mount = new ConfigMount(join(dir, 'config'), TWO_CONFIGS);
    sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }] });
    machine = openSimulated(sim);
    configFile = mount.file;
    agent = startAgent(cp.kubeconfigPath);
    await agent.start();
  });

  let configFile: string;
  const startAgent = (kubeconfigPath: string) =>
    new Agent({
      nodeName: NODE,
      machine,
      kube: new Kube(loadKubeConfig(kubeconfigPath), { userAgent: 'vmgpu-agent/test' }),
      configFile,
      stateDir: join(dir, 'state'),
      devicePluginDir: kubelet.dir,
      podResourcesSocket: join(dir, 'pod-resources.sock'),
      metricsAddr: null,
      logger: memoryLogger(),
      validateIntervalMs: 0,
      pendingRecheckMs: 200,
      driftCheckMs: 300,
      retryInitialMs: 200,
      retryMaxMs: 2000,
      watchBackoffInitialMs: 100,
      watchBackoffMaxMs: 1000,
      devicePluginOptions: { healthIntervalMs: 1000, watchIntervalMs: 1000 },
    });

  after(async () => {
    await agent?.stop();
    await pods?.stop();
    await kubelet?.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('vm-vgpu: the agent marks the node vmgpu.io/managed=true with its layout', T, async () => {
    await waitStatus('large applied', (s) => s.state === 'success' && s.config === 'large');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-2Q': 48 });
    assert.equal((await labels())[LABEL_MANAGED], 'true');
    await eventually('48 vGPUs advertised', async () => (await advertised()) === 48);
  });

  test('vm-vgpu -> container with one vGPU held by a pod: the free GPU goes back, the held one\'s GPU waits, nothing is advertised, the mark stays; on release all GPUs are back and the mark goes', T, async () => {
    const held = (await machine.inventory()).gpus[0]!.vfs[0]!.address;
    pods.setPods([{ name: 'vm-a', namespace: 'tenant', containers: [{ name: 'compute', devices: [{ resourceName: 'nvidia.com/L40S-2Q', deviceIds: [held] }] }] }]);
    await setLabels(admin, NODE, { [LABEL_WORKLOAD]: 'container' });
    const s = await waitStatus('pending on the held vGPU', (x) => x.state === 'pending' && x.config === 'container');
    assert.ok(s.blocked.some((b) => b.device === held && /tenant\/vm-a/.test(b.reason)), `blocked names ${held} and the pod: ${JSON.stringify(s.blocked)}`);
    const inv = await machine.inventory();
    assert.equal(inv.gpus[1]!.vfs.length, 0, 'the GPU with nothing held is back: vGPUs cleared, VFs disabled');
    // All or nothing per GPU, as for any change (plan.ts): the GPU a VM uses keeps its vGPUs until it is free.
    assert.equal(inv.gpus[0]!.vfs.filter((v) => v.currentProfile === 'L40S-2Q').length, 24, 'the GPU with the held vGPU waits');
    assert.equal((await labels())[LABEL_MANAGED], 'true', 'the mark stays while a device waits: the chart keeps the agent here');
    await eventually('nothing advertised on a container node', async () => (await advertised()) === 0);
    assert.deepEqual(await permitted(), { pciHostDevices: [], mediatedDevices: [] });

    pods.setPods([]);
    await waitStatus('success once released', (x) => x.state === 'success' && x.config === 'container');
    assert.deepEqual(await vfProfiles(machine), {});
    assert.equal(await vfCount(), 0, 'VFs disabled on both GPUs');
    assert.deepEqual(await drivers(), ['nvidia', 'nvidia']);
    await eventually('the mark is removed', async () => !(LABEL_MANAGED in (await labels())));
    const ev = await eventually('GpusReturnedToHost event', async () => (await nodeEvents(admin, NODE)).find((e) => e.reason === 'GpusReturnedToHost'));
    assert.equal(ev.type, 'Normal');
    assert.equal(await advertised(), 0);
  });

  test('a released container node: the agent changes nothing (the drift check is off) and serves nothing', T, async () => {
    // Someone else (the GPU Operator's tooling, an admin) enables VFs: not ours to undo any more.
    const pf = checkPciAddress((await machine.inventory()).gpus[1]!.pci.address);
    sim.port.writeSriovNumVfs(pf, 4);
    const w0 = sim.writes();
    await sleep(1500); // five drift-check periods
    assert.equal(sim.writes(), w0, 'no write on a released container node');
    assert.equal((await machine.inventory()).gpus[1]!.vfs.length, 4);
    assert.equal(await advertised(), 0);
    sim.port.writeSriovNumVfs(pf, 0);
  });

  test('vm-passthrough -> container: the mark comes back with the VM layout; a GPU a VM holds waits, then returns to nvidia', T, async () => {
    await setLabels(admin, NODE, { [LABEL_WORKLOAD]: 'vm-passthrough' });
    await waitStatus('passthrough applied', (x) => x.state === 'success' && x.config === 'vm-passthrough');
    assert.deepEqual(await drivers(), ['vfio-pci', 'vfio-pci']);
    assert.equal((await labels())[LABEL_MANAGED], 'true');
    await eventually('two whole GPUs advertised', async () => (await advertised()) === 2);

    const [a, b] = (await machine.inventory()).gpus.map((g) => g.pci.address);
    const resource = (await kubelet.state()).find((p) => p.devices.some((d) => d.ID === a))!.resourceName;
    pods.setPods([{ name: 'vm-b', namespace: 'tenant', containers: [{ name: 'compute', devices: [{ resourceName: resource, deviceIds: [a!] }] }] }]);
    await setLabels(admin, NODE, { [LABEL_WORKLOAD]: 'container' });
    await waitStatus('pending on the passed-through GPU', (x) => x.state === 'pending' && x.blocked.some((blk) => blk.device === a));
    assert.deepEqual(await drivers(), ['vfio-pci', 'nvidia'], `${a} stays with its VM, ${b} goes back`);
    assert.equal((await labels())[LABEL_MANAGED], 'true');
    await eventually('nothing advertised', async () => (await advertised()) === 0);

    pods.setPods([]);
    await waitStatus('success once released', (x) => x.state === 'success' && x.config === 'container');
    assert.deepEqual(await drivers(), ['nvidia', 'nvidia']);
    await eventually('the mark is removed', async () => !(LABEL_MANAGED in (await labels())));
  });

  test('an agent that cannot put the mark on its Node changes nothing for VMs (fail closed) and says why', T, async () => {
    await agent.stop();
    // May read and watch Nodes but not patch them.
    await admin.rbac.createClusterRole({ body: { metadata: { name: 'node-reader' }, rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }] } });
    await admin.rbac.createClusterRoleBinding({ body: { metadata: { name: 'node-reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'node-reader' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'read-only-agent' }] } });
    await setLabels(admin, NODE, { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'small' });
    const w0 = sim.writes();
    agent = startAgent(cp.clientKubeConfig('read-only-agent').kubeconfigPath);
    await agent.start();
    const s = await eventually('failed: the mark cannot be set', async () => {
      const x = agent.currentStatus();
      return x?.state === 'failed' ? x : null;
    });
    assert.match(s.reason, /cannot label the node vmgpu\.io\/managed=true.*forbidden.*nothing was changed/s);
    await sleep(600); // retries meanwhile
    assert.equal(sim.writes(), w0, 'no write without the mark');
    assert.deepEqual(await vfProfiles(machine), {});
  });
});
