// The node agent end to end: a real kube-apiserver (test/harness/controlplane.ts), a
// simulated 2 x L40S node, the Go fake kubelet (device plugin registration) and the Go
// pod-resources server. The agent runs in-process on the simulated node.
import { openSimulated } from '../../src/machine/simulated.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startFakeKubelet, startPodResources, type FakeKubelet, type FakePodResources } from '../harness/peers.js';
import { createSimulatedNode, type SimulatedNode } from '../../src/simulator/index.js';
import { Agent, type AgentOptions } from '../../src/serve/agent/agent.js';
import { KubeConfig } from '@kubernetes/client-node';
import { Kube, loadKubeConfig } from '../../src/serve/kube/kube.js';
import { jsonLogger, memoryLogger } from '../../src/serve/kube/logger.js';
import { ANNOTATION_STATUS, LABEL_CONFIG, LABEL_STATE } from '../../src/serve/agent/desired.js';
import type { Machine } from '../../src/machine/machine.js';
import { adminClient, type Admin, ConfigMount, getNode, nodeEvents, setLabels, TWO_CONFIGS, vfProfiles } from './agent-helpers.js';
import { eventually, sleep } from '../support/wait.js';
import { checkPciAddress } from '../../src/model/pci.js';

const NODE = 'gpu-node-1';
const T = { timeout: 180_000 };

describe('vmgpu agent against a real API server', { timeout: 900_000 }, () => {
  let cp: ControlPlane;
  let admin: Admin;
  let kubelet: FakeKubelet;
  let pods: FakePodResources;
  let dir: string;
  let mount: ConfigMount;
  let sim: SimulatedNode;
  let machine: Machine;
  let agent: Agent | null = null;
  let respawned: ChildProcess | null = null;

  const agentOptions = (o: Partial<AgentOptions> = {}): AgentOptions => ({
    nodeName: NODE,
    machine,
    kube: new Kube(loadKubeConfig(cp.kubeconfigPath), { userAgent: 'vmgpu-agent/test' }),
    configFile: mount.file,
    stateDir: join(dir, 'state'),
    devicePluginDir: kubelet.dir,
    podResourcesSocket: join(dir, 'pod-resources.sock'),
    metricsAddr: null,
    logger: process.env.VMGPU_AGENT_LOG ? jsonLogger({ level: 'debug' }) : memoryLogger(),
    validateIntervalMs: 0,
    pendingRecheckMs: 200,
    driftCheckMs: 500,
    retryInitialMs: 200,
    retryMaxMs: 2000,
    watchBackoffInitialMs: 100,
    watchBackoffMaxMs: 1000,
    devicePluginOptions: { healthIntervalMs: 1000, watchIntervalMs: 1000 },
    ...o,
  });

  const state = async () => (await getNode(admin, NODE)).metadata?.labels?.[LABEL_STATE];
  const status = async () => JSON.parse((await getNode(admin, NODE)).metadata?.annotations?.[ANNOTATION_STATUS] ?? 'null') as { state: string; reason: string; config: string; blocked: { device: string; reason: string }[] } | null;
  const waitStatus = (what: string, pred: (s: NonNullable<Awaited<ReturnType<typeof status>>>) => boolean) =>
    eventually(what, async () => {
      const s = await status();
      return s && pred(s) ? s : null;
    });
  const advertised = async (resource: string) => (await kubelet.state()).find((p) => p.resourceName === resource)?.devices.length ?? 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmgpu-agent-it-'));
    cp = await startControlPlane();
    admin = adminClient(cp.kubeConfig);
    await cp.createNode(NODE);
    mkdirSync(join(dir, 'device-plugins'));
    kubelet = await startFakeKubelet(join(dir, 'device-plugins'));
    pods = await startPodResources(join(dir, 'pod-resources.sock'), []);
    mount = new ConfigMount(join(dir, 'config'), TWO_CONFIGS);
    sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' }] });
    machine = openSimulated(sim);
  });

  after(async () => {
    await agent?.stop();
    await pods?.stop();
    await kubelet?.stop();
    respawned?.kill('SIGKILL');
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('label change -> VFs programmed -> state success -> device plugin advertises the new counts', T, async () => {
    agent = new Agent(agentOptions());
    await agent.start();
    const w0 = sim.writes();
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'small' });
    await eventually('state success', async () => (await state()) === 'success');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-1Q': 64 });
    assert.ok(sim.writes() - w0 >= 64, `expected at least 64 writes, got ${sim.writes() - w0}`);
    await eventually('fake kubelet sees 64 L40S-1Q devices', async () => (await advertised('nvidia.com/L40S-1Q')) === 64);
    const s = await status();
    assert.equal(s?.config, 'small');
    const ev = await eventually('VgpuConfigApplied event', async () => (await nodeEvents(admin, NODE)).find((e) => e.reason === 'VgpuConfigApplied'));
    assert.match(ev.message ?? '', /small/);
    assert.equal(agent.lastApplied()?.configName, 'small');
    // The kubelet allocates through the in-process plugin: the per-call counter follows, refusals by reason.
    const devices = (await kubelet.state()).find((p) => p.resourceName === 'nvidia.com/L40S-1Q')!.devices.map((d) => d.ID);
    await kubelet.allocate('nvidia.com/L40S-1Q', [[devices[0]!], [devices[1]!, devices[2]!]]);
    await assert.rejects(kubelet.allocate('nvidia.com/L40S-1Q', [['0000:ff:00.0']]));
    const calls = async () => Object.fromEntries((await agent!.metrics.allocateCalls.get()).values.map((v) => [`${v.labels.resource} ${v.labels.result}`, v.value]));
    assert.deepEqual(await calls(), { 'nvidia.com/L40S-1Q ok': 1, 'nvidia.com/L40S-1Q unknown-device': 1 });

    // Flip to the other config: the plugin for the old profile goes, the new one comes.
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'large' });
    await waitStatus('config large applied', (x) => x.config === 'large' && x.state === 'success');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-2Q': 48 });
    await eventually('fake kubelet sees 48 L40S-2Q devices', async () => (await advertised('nvidia.com/L40S-2Q')) === 48);
  });

  test('a bad config file -> failed + Event, zero writes; fixing the file recovers by itself', T, async () => {
    const w0 = sim.writes();
    mount.swap('version: v1\nvgpu-configs:\n  large:\n    - devices: all\n      vgpu-devices:\n        L40S-2Q: lots\n');
    await waitStatus('state failed', (x) => x.state === 'failed');
    assert.equal(await state(), 'failed');
    const ev = await eventually('VgpuConfigFailed event', async () => (await nodeEvents(admin, NODE)).find((e) => e.reason === 'VgpuConfigFailed' && e.type === 'Warning'));
    assert.match(ev.message ?? '', /config\.yaml/);
    await sleep(600); // a few backoff retries happen meanwhile
    assert.equal(sim.writes(), w0, 'a bad config must not write anything');
    mount.swap(TWO_CONFIGS);
    await waitStatus('back to success', (x) => x.state === 'success' && x.config === 'large');
    assert.equal(sim.writes(), w0, 'the node already matched: no writes');
  });

  test('a device held by a pod (pod-resources) -> pending with the reason, then success when released', T, async () => {
    const inv = await machine.inventory();
    const held = inv.gpus[0]!.vfs[0]!.address;
    pods.setPods([{ name: 'vm-a', namespace: 'tenant', containers: [{ name: 'compute', devices: [{ resourceName: 'nvidia.com/L40S-2Q', deviceIds: [held] }] }] }]);
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'small' });
    const s = await waitStatus('pending', (x) => x.state === 'pending');
    assert.ok(
      s.blocked.some((b) => b.device === held && /tenant\/vm-a/.test(b.reason)),
      `the blocked list names ${held} and the pod: ${JSON.stringify(s.blocked)}`,
    );
    assert.match(s.reason, /tenant\/vm-a/);
    await eventually('VgpuConfigPending event', async () => (await nodeEvents(admin, NODE)).find((e) => e.reason === 'VgpuConfigPending'));
    // Everything else was applied: the other GPU is fully 1Q.
    const mid = await machine.inventory();
    assert.ok(mid.gpus[1]!.vfs.every((v) => v.currentProfile === 'L40S-1Q'), 'the GPU without held devices was reconfigured');
    assert.equal(mid.gpus[0]!.vfs[0]!.currentProfile, 'L40S-2Q', 'the held VF kept its type');
    pods.setPods([]);
    await waitStatus('success after release', (x) => x.state === 'success' && x.config === 'small');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-1Q': 64 });
  });

  test('agent restart: no duplicate apply (zero writes, no new Applied event), state stays success', T, async () => {
    await agent!.stop();
    const w0 = sim.writes();
    const applied0 = (await nodeEvents(admin, NODE)).filter((e) => e.reason === 'VgpuConfigApplied').length;
    agent = new Agent(agentOptions());
    await agent.start();
    await eventually('restarted agent reconciles', () => new Promise<boolean>((r) => (agent!.currentStatus()?.state === 'success' ? r(true) : agent!.events.once('reconciled', () => r(true)))));
    await agent.idle();
    await sleep(300);
    assert.equal(sim.writes(), w0, 'a restart with the same config writes nothing');
    assert.equal(await state(), 'success');
    assert.equal((await status())?.reason, 'the node already matches');
    assert.equal((await nodeEvents(admin, NODE)).filter((e) => e.reason === 'VgpuConfigApplied').length, applied0, 'no new VgpuConfigApplied event');
    await eventually('plugins registered again', async () => (await advertised('nvidia.com/L40S-1Q')) === 64);
  });

  test('an sriov_numvfs reset (VFs and vGPUs gone while running) is found by the local check and repaired, with an Event and the metric (defect 9)', T, async () => {
    await eventually('state success', async () => (await state()) === 'success');
    const pf = (await machine.inventory()).gpus[1]!.pci.address;
    sim.port.writeSriovNumVfs(checkPciAddress(pf), 0); // what a driver reload or an admin's reset leaves
    assert.equal((await vfProfiles(machine))['L40S-1Q'], 32, 'half the vGPUs are gone');
    const ev = await eventually('VgpuDriftDetected event', async () => (await nodeEvents(admin, NODE)).find((e) => e.reason === 'VgpuDriftDetected'), 30_000);
    assert.equal(ev.type, 'Warning');
    assert.match(ev.message ?? '', new RegExp(`enable 32 VFs on ${pf}`));
    await eventually('repaired: 64 L40S-1Q again', async () => (await vfProfiles(machine))['L40S-1Q'] === 64, 30_000);
    await eventually('state success', async () => (await state()) === 'success');
    assert.equal((await agent!.metrics.drift.get()).values[0]?.value, 1, 'counted once');
    await eventually('plugins advertise all 64 again', async () => (await advertised('nvidia.com/L40S-1Q')) === 64);
  });

  test('API server restart: device plugins keep serving, the watch resumes, no duplicate apply', T, async () => {
    const pid = cp.pids.apiserver;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const w0 = sim.writes();
    process.kill(pid, 'SIGKILL'); // a crash: connections drop without a goodbye
    await eventually('old kube-apiserver exited', async () => {
      try {
        return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return true;
      }
    });
    await eventually('the agent notices the outage', () => new Promise<boolean>((r) => agent!.events.once('api-error', () => r(true))), 30_000);
    // Device plugins keep serving while the API server is down.
    assert.equal(await advertised('nvidia.com/L40S-1Q'), 64);
    const log = openSync(join(dir, 'apiserver-respawn.log'), 'a');
    respawned = spawn(argv[0]!, argv.slice(1), { cwd: cp.dir, stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cp.dir, TMPDIR: cp.dir } });
    await eventually('kube-apiserver back', async () => (await getNode(admin, NODE)).metadata?.name === NODE, 90_000, 500);
    await sleep(1500);
    assert.equal(sim.writes(), w0, 'reconnecting must not re-apply');
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'large' });
    await waitStatus('large after the API server restart', (x) => x.state === 'success' && x.config === 'large');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-2Q': 48 });
  });

  test('no pod-resources socket (a wrong kubelet root): nothing is changed, failed with the reason and the fix (defect 2)', T, async () => {
    await agent!.stop();
    agent = new Agent(agentOptions({ podResourcesSocket: join(dir, 'k0s', 'kubelet', 'pod-resources', 'kubelet.sock') }));
    await agent.start();
    const w0 = sim.writes();
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'small' });
    const s = await waitStatus('failed: in-use cannot be determined', (x) => x.state === 'failed' && x.config === 'small');
    assert.match(s.reason, /pod-resources socket .* does not exist, so vmgpu cannot tell which devices pods hold/);
    assert.match(s.reason, /--no-kubelet/);
    await sleep(600); // backoff retries meanwhile
    assert.equal(sim.writes(), w0, 'no write while in-use cannot be determined');
    await agent.stop();
    agent = new Agent(agentOptions());
    await agent.start();
    await waitStatus('small applied once the kubelet answers', (x) => x.state === 'success' && x.config === 'small');
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'large' });
    await waitStatus('back to large', (x) => x.state === 'success' && x.config === 'large');
  });

  test('reboot: the last applied config is re-applied before the API server is reachable', T, async () => {
    await agent!.stop();
    agent = null;
    sim.reboot();
    assert.deepEqual(await vfProfiles(machine), {});
    // An API server that does not answer: a closed port.
    const offlineConfig = new KubeConfig();
    offlineConfig.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: false }], users: [{ name: 'u', token: 'x' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    const offline = new Kube(offlineConfig, { userAgent: 'vmgpu-agent/test' });
    agent = new Agent(agentOptions({ kube: offline }));
    await agent.start();
    assert.deepEqual(await vfProfiles(machine), { 'L40S-2Q': 48 }, 'VFs re-programmed at boot without the API server');
    await eventually('plugins serve the re-applied config', async () => (await advertised('nvidia.com/L40S-2Q')) === 48);
    await agent.stop();
    agent = null;
  });
});
