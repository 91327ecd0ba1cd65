// The DRA driver's promises on a real node when things go wrong: a driver restart leaves running
// VMs alone and the restarted driver unprepares their claims; a claim waits while the driver is
// down; a kubelet restart wipes the ResourceSlices and the driver publishes them again; after a
// node reboot (VFs gone, containers restarted) the kubelet prepares again and the VM gets its VF
// back; a VF a VM holds is never cleared, Unprepare waits until it is released. The driver runs in
// this process on an in-memory simulated L40S, so the test can hold a VF and replace the hardware.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { createSimulatedNode, type SimNodeSpec, type SimulatedNode } from '../../src/simulator/index.js';
import { createChartDeviceClasses, startDraDriver, type TestDriver } from '../harness/dra-driver.js';
import { draProbePod, draProbeResult, podProblem, publishedDevices, ResourceApi } from '../harness/dra-pods.js';
import { deletePodAndWait } from '../harness/node-pods.js';
import { startNode, type TestNode } from '../harness/node.js';
import { eventually } from '../support/wait.js';

const T = { timeout: 300_000 };
const NS = 'safety';
const SPEC: SimNodeSpec = { gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu', vfsEnabled: false }] };
const CLASS = 'l40s-12q.gpu.vmgpu.io';

describe('the DRA driver when things go wrong, on a real node', { timeout: 1_800_000 }, () => {
  let node: TestNode;
  let core: CoreV1Api;
  let api: ResourceApi;
  let sim: SimulatedNode;
  let drv: TestDriver;
  const stateDir = mkdtempSync(join(tmpdir(), 'vmgpu-dra-safety-'));
  const typed = async () => Object.fromEntries((await drv.machine.inventory({ mixedSizeMode: false })).gpus.flatMap((g) => g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => [v.address, v.currentProfile])));
  const start = async () => (drv = await startDraDriver(node, sim, { stateDir }));

  /** A pod (restartPolicy Always: a killed sandbox is made again) using a new claim for an L40S-12Q; resolves with the VF it sees. */
  const vm = async (name: string): Promise<string> => {
    await api.createClaim({ name, namespace: NS, deviceClassName: CLASS });
    const outDir = join(node.dir, 'pod-out', name);
    const pod = draProbePod({ name, namespace: NS, image: node.images.busybox, outDir, claims: { gpu: name } });
    pod.spec!.restartPolicy = 'Always';
    await core.createNamespacedPod({ namespace: NS, body: pod });
    await draProbeResult(core, pod, outDir, 120_000);
    const rec = drv.driver.checkpoint.all().find((c) => c.name === name)!;
    const t = rec.devices[0]!.target;
    return t.kind === 'vf' ? t.address : assert.fail(`not a VF: ${JSON.stringify(t)}`);
  };

  before(async () => {
    node = await startNode({});
    core = node.cp.kubeConfig.makeApiClient(CoreV1Api);
    api = new ResourceApi(node.cp.kubeConfig);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await eventually('the default ServiceAccount', () => core.readNamespacedServiceAccount({ namespace: NS, name: 'default' }));
    await createChartDeviceClasses(node, api);
    sim = createSimulatedNode(SPEC);
    await start();
  });
  after(async () => {
    await drv?.stop();
    await node?.stop();
  });

  test('a driver restart leaves the running VM\'s VF alone; the restarted driver unprepares it when the Pod goes', T, async () => {
    const vf = await vm('a');
    await drv.stop();
    await start();
    assert.deepEqual(await typed(), { [vf]: 'L40S-12Q' }, 'nothing re-made, nothing lost');
    await deletePodAndWait(core, NS, 'a');
    await eventually('the VF cleared by the new driver', async () => Object.keys(await typed()).length === 0);
    await api.deleteClaim(NS, 'a');
  });

  test('a claim prepared while the driver is down waits, and runs once it is back', T, async () => {
    await drv.stop();
    const pending = vm('b');
    await eventually('the kubelet reports the driver missing', async () => /FailedPrepareDynamicResources.*gpu\.vmgpu\.io/.test(await podProblem(core, NS, 'b')), 120_000);
    await start();
    await pending;
    await deletePodAndWait(core, NS, 'b');
    await api.deleteClaim(NS, 'b');
    await eventually('cleared', async () => Object.keys(await typed()).length === 0);
  });

  test('a kubelet restart wipes the node\'s ResourceSlices; the driver publishes them again', T, async (t) => {
    const before = (await eventually('a complete pool', () => publishedDevices(api, node.name))).map((d) => d.name).sort();
    const uids = new Set((await api.slices(node.name)).map((s) => s.metadata.uid));
    const r = await node.restartKubelet();
    const back = await eventually('the pool again, in new slices', async () => {
      const slices = await api.slices(node.name);
      const now = await publishedDevices(api, node.name);
      return now && now.length === before.length && slices.every((s) => !uids.has(s.metadata.uid)) ? Date.now() : null;
    }, 120_000);
    t.diagnostic(`kubelet start -> slices back ${back - r.startedAt} ms`);
    assert.deepEqual((await publishedDevices(api, node.name))!.map((d) => d.name).sort(), before);
  });

  test('a node reboot: the VFs are gone, the kubelet makes the sandbox again and Prepare remakes the VM\'s VF', T, async () => {
    const vf = await vm('c');
    await drv.stop();
    sim = createSimulatedNode(SPEC); // the hardware after a power cycle: no VFs, no types
    const ctr = (args: string[]) => {
      const argv = node.inNamespace([node.tools.ctr, '-a', join(node.dir, 'containerd.sock'), '-n', 'k8s.io', ...args]);
      return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    };
    for (const id of ctr(['tasks', 'ls', '-q']).trim().split('\n').filter(Boolean)) ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
    await node.restartKubelet();
    await start();
    await eventually('the VM\'s VF made again', async () => (await typed())[vf] === 'L40S-12Q', 180_000).catch(async (e: Error) => assert.fail(`${e.message}: ${await podProblem(core, NS, 'c')}`));
    assert.equal(Object.keys(await typed()).length, 1, 'exactly one vGPU: nothing duplicated');
    await deletePodAndWait(core, NS, 'c', 120_000);
    await api.deleteClaim(NS, 'c');
    await eventually('cleared', async () => Object.keys(await typed()).length === 0);
  });

  test('a GPU that falls off the bus: the kubelet shows the Pod\'s device Unhealthy (dra-health), and Healthy again when it is back', T, async () => {
    await vm('e');
    const health = async () => {
      const pod = (await core.readNamespacedPod({ namespace: NS, name: 'e' })) as unknown as { status?: { containerStatuses?: { allocatedResourcesStatus?: { name: string; resources: { resourceID: string; health: string }[] }[] }[] } };
      return pod.status?.containerStatuses?.[0]?.allocatedResourcesStatus?.find((r) => r.name === 'claim:gpu')?.resources[0];
    };
    await eventually('the kubelet reports the device Healthy', async () => (await health())?.health === 'Healthy', 120_000);
    const gpu = sim.gpus[0]!.pf.addr;
    sim.removeDevice(gpu);
    await drv.driver.refresh();
    const sick = await eventually('the device Unhealthy on the Pod', async () => ((await health())?.health === 'Unhealthy' ? await health() : null), 120_000);
    assert.match(sick!.resourceID, /^gpu\.vmgpu\.io\/vgpu=.+-gpu-0000-18-00-0-l40s-12q-0$/, 'the kubelet names the device by its CDI ID');
    sim.restoreDevice(gpu);
    await drv.driver.refresh();
    await eventually('Healthy again', async () => (await health())?.health === 'Healthy', 120_000);
    await deletePodAndWait(core, NS, 'e');
    await api.deleteClaim(NS, 'e');
    await eventually('cleared', async () => Object.keys(await typed()).length === 0);
  });

  test('a VF a VM holds is never cleared: Unprepare waits until the VM lets it go', T, async () => {
    const vf = await vm('d');
    sim.hold(vf); // a QEMU process with the VF's VFIO group open
    await core.deleteNamespacedPod({ namespace: NS, name: 'd', gracePeriodSeconds: 0 });
    await eventually('the driver refused to unprepare', async () => drv.log.entries.some((e) => e.msg === 'NodeUnprepareResources failed' && /in use: process/.test(String(e.fields.error))), 120_000);
    assert.deepEqual(await typed(), { [vf]: 'L40S-12Q' }, 'the held VF keeps its vGPU');
    sim.release(vf);
    await eventually('unprepared once released', async () => Object.keys(await typed()).length === 0, 120_000);
    await api.deleteClaim(NS, 'd');
  });
});
