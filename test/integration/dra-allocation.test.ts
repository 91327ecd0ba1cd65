// Random claim streams against the real kube-scheduler on an 8-GPU simulated node (4 x L40S
// SR-IOV, 2 x H100 SR-IOV with MIG-backed profiles, 2 x A100 mdev on VFs), once per allocation
// model: `shared` (the 1.37 defaults), `pinned` (no counters), `compatibility-groups` (with the
// DRADeviceCompatibilityGroups gate). After every round: every Pod whose claim was allocated
// runs (Prepare never refuses what the scheduler chose), no GPU holds more than one profile or
// more vGPUs than the profile allows, a whole GPU holds nothing else, each running Pod's vGPU is
// the profile it asked for; deleting Pods frees capacity for the Pods still pending.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type { Inventory } from '../../src/inventory/types.js';
import { factsFor } from '../../src/plan/facts.js';
import { createSimulatedNode, type SimulatedNode } from '../../src/simulator/index.js';
import { createChartDeviceClasses, startDraDriver, type TestDriver } from '../harness/dra-driver.js';
import { draProbePod, podProblem, publishedDevices, ResourceApi } from '../harness/dra-pods.js';
import { deletePodAndWait } from '../harness/node-pods.js';
import { startNode, type TestNode } from '../harness/node.js';
import { eventually, sleep } from '../support/wait.js';

const T = { timeout: 900_000 };
const NS = 'stream';

/** A small reproducible random source (seed printed by each test). */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

function hardware(): SimulatedNode {
  return createSimulatedNode({
    gpus: [
      { model: 'L40S', count: 4, mode: 'sriov-vgpu', vfsEnabled: false },
      { model: 'H100', count: 2, mode: 'sriov-vgpu', vfsEnabled: false },
      { model: 'A100-40GB', count: 2, mode: 'mdev-vgpu' },
    ],
  });
}

/** The driver's capacity rule, checked on the node as it is. */
function checkGpus(inv: Inventory): void {
  for (const g of inv.gpus) {
    const profiles = [...g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => v.currentProfile ?? '?'), ...g.mdevParents.flatMap((p) => p.instances.map((i) => (i.typeName ?? '?').replace(/^NVIDIA /, '')))];
    const kinds = new Set(profiles);
    assert.ok(kinds.size <= 1, `${g.pci.address} holds more than one profile: ${profiles.join(', ')}`);
    if (g.framework === 'passthrough') assert.equal(profiles.length, 0, `${g.pci.address} is passed through and holds vGPUs`);
    const [p] = kinds;
    if (p) assert.ok(profiles.length <= (factsFor(g, p)?.maxInstances ?? 0), `${g.pci.address}: ${profiles.length} x ${p}, more than fit`);
  }
}

interface Stream {
  node: TestNode;
  api: ResourceApi;
  core: CoreV1Api;
  sim: SimulatedNode;
  drv: TestDriver;
}

/** One round: create claims and pods, wait until each is running or unschedulable, check, delete about half of the running ones. */
async function round(s: Stream, r: (n: number) => number, index: number, wishes: string[], running: Map<string, string>): Promise<{ pending: number; ran: number }> {
  const pods: string[] = [];
  for (let i = 0; i < 8; i++) {
    const name = `r${index}-${i}`;
    const wish = wishes[r(wishes.length)]!;
    const whole = wish === 'whole';
    await s.api.createClaim({ name, namespace: NS, deviceClassName: whole ? 'passthrough.gpu.vmgpu.io' : 'vgpu.gpu.vmgpu.io', ...(whole ? {} : { selector: `device.attributes['gpu.vmgpu.io'].profile == '${wish}'` }) });
    await s.core.createNamespacedPod({ namespace: NS, body: draProbePod({ name, namespace: NS, image: s.node.images.busybox, outDir: join(s.node.dir, 'pod-out', name), claims: { gpu: name } }) });
    pods.push(name);
  }
  let pending = 0;
  for (const name of [...pods, ...[...running.keys()].filter((n) => !pods.includes(n))]) {
    const state = await eventually(`pod ${name} running or unschedulable`, async () => {
      const p = await s.core.readNamespacedPod({ namespace: NS, name });
      if (p.status?.phase === 'Running') return 'running';
      const sched = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
      const claim = await s.api.claim(NS, name);
      return sched?.status === 'False' && !claim?.status?.allocation ? 'pending' : null;
    }, 120_000).catch(async (e: Error) => assert.fail(`${e.message}: ${await podProblem(s.core, NS, name)}`));
    if (state === 'running') {
      const res = (await s.api.claim(NS, name))!.status!.allocation!.devices!.results![0]!;
      running.set(name, res.device);
    } else pending++;
  }
  checkGpus(await s.drv.machine.inventory({ mixedSizeMode: false }));
  for (const [name, device] of running) {
    const rec = s.drv.driver.checkpoint.all().find((c) => c.name === name);
    assert.equal(rec?.state, 'prepared', `${name} (${device}) is prepared`);
  }
  const ran = running.size;
  const deleted = [...running.keys()].filter(() => r(2) === 0);
  for (const name of deleted) {
    await deletePodAndWait(s.core, NS, name);
    await s.api.deleteClaim(NS, name);
    running.delete(name);
  }
  // Pods that were waiting may be scheduled now: only the deleted ones must be gone.
  await eventually('the deleted pods\' claims unprepared', async () => !s.drv.driver.checkpoint.all().some((c) => deleted.includes(c.name)), 60_000);
  return { pending, ran };
}

async function clearAll(s: Stream, running: Map<string, string>): Promise<void> {
  const pods = await s.core.listNamespacedPod({ namespace: NS });
  await Promise.all(pods.items.map((p) => deletePodAndWait(s.core, NS, p.metadata!.name!)));
  for (const c of await s.api.claims(NS)) await s.api.deleteClaim(NS, c.metadata.name);
  running.clear();
  await eventually('every claim unprepared and every GPU empty', async () => {
    const inv = await s.drv.machine.inventory({ mixedSizeMode: false });
    return s.drv.driver.checkpoint.all().length === 0 && inv.gpus.every((g) => g.framework !== 'passthrough' && g.vfs.every((v) => v.currentTypeId === 0) && g.mdevParents.every((p) => p.instances.length === 0));
  }, 90_000);
}

async function streams(s: Stream, seed: number, rounds: number, t: { diagnostic(m: string): void }): Promise<void> {
  const devices = await eventually('a complete pool', () => publishedDevices(s.api, s.node.name));
  const wishes = [...new Set(devices.map((d) => d.attributes.profile?.string ?? 'whole'))];
  const r = rng(seed);
  const running = new Map<string, string>();
  for (let i = 0; i < rounds; i++) {
    const { pending, ran } = await round(s, r, i, wishes, running);
    t.diagnostic(`seed ${seed} round ${i}: ${ran} running, ${pending} pending, ${running.size} kept`);
  }
  await clearAll(s, running);
}

/** Fill every GPU whole, one more claim waits; freeing a GPU lets it run. */
async function freesCapacity(s: Stream): Promise<void> {
  const gpus = s.sim.gpus.length;
  for (let i = 0; i <= gpus; i++) {
    const name = `whole-${i}`;
    await s.api.createClaim({ name, namespace: NS, deviceClassName: 'passthrough.gpu.vmgpu.io' });
    await s.core.createNamespacedPod({ namespace: NS, body: draProbePod({ name, namespace: NS, image: s.node.images.busybox, outDir: join(s.node.dir, 'pod-out', name), claims: { gpu: name } }) });
  }
  const phase = async (name: string) => (await s.core.readNamespacedPod({ namespace: NS, name })).status?.phase;
  await eventually(`${gpus} whole GPUs running`, async () => (await Promise.all(Array.from({ length: gpus }, (_, i) => phase(`whole-${i}`)))).every((p) => p === 'Running'), 180_000);
  await sleep(2000);
  assert.notEqual(await phase(`whole-${gpus}`), 'Running', 'the ninth whole GPU does not exist');
  await deletePodAndWait(s.core, NS, 'whole-0');
  await s.api.deleteClaim(NS, 'whole-0');
  await eventually('the waiting pod runs once a GPU is free', async () => (await phase(`whole-${gpus}`)) === 'Running', 120_000);
  await clearAll(s, new Map());
}

async function setUp(featureGates: Record<string, boolean>): Promise<Stream> {
  const node = await startNode({ featureGates, vfioNodes: 512 });
  const core = node.cp.kubeConfig.makeApiClient(CoreV1Api);
  const api = new ResourceApi(node.cp.kubeConfig);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await eventually('the default ServiceAccount', () => core.readNamespacedServiceAccount({ namespace: NS, name: 'default' }));
  await createChartDeviceClasses(node, api);
  const sim = hardware();
  const drv = await startDraDriver(node, sim, { stateDir: mkdtempSync(join(tmpdir(), 'vmgpu-dra-state-')) });
  return { node, api, core, sim, drv };
}

describe('DRA allocation on the 1.37 defaults: the shared and pinned models', { timeout: 3_600_000 }, () => {
  let s: Stream;
  before(async () => (s = await setUp({})));
  after(async () => {
    await s?.drv.stop();
    await s?.node.stop();
  });

  test('shared: random claim streams never over-commit or mix on a GPU, and every allocated claim prepares', T, async (t) => {
    assert.equal(s.drv.driver.status().model, 'shared');
    await streams(s, 1377, 3, t);
  });

  test('shared: deleting a Pod frees the capacity a waiting Pod needs', T, () => freesCapacity(s));

  test('pinned (policy allocation: pinned): one profile per GPU, the same guarantees', T, async (t) => {
    await s.drv.driver.configure(s.sim.gpus.map((g) => g.pf.addr), { profiles: ['L40S-12Q', 'H100-20C', 'A100-10C'], maxInstances: null, passthrough: true, allocation: 'pinned' });
    assert.equal(s.drv.driver.status().model, 'pinned');
    await eventually('the pinned pool published', async () => (await publishedDevices(s.api, s.node.name))?.every((d) => !d.name.endsWith('-whole')));
    await streams(s, 4242, 2, t);
  });
});

describe('DRA allocation with KEP-5963 compatibility groups (DRADeviceCompatibilityGroups)', { timeout: 3_600_000 }, () => {
  let s: Stream;
  before(async () => (s = await setUp({ DRADeviceCompatibilityGroups: true })));
  after(async () => {
    await s?.drv.stop();
    await s?.node.stop();
  });

  test('compatibility-groups: random claim streams never over-commit or mix on a GPU, and every allocated claim prepares', T, async (t) => {
    assert.equal(s.drv.driver.status().model, 'compatibility-groups');
    await streams(s, 5963, 3, t);
  });
});
