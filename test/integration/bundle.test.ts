// The artifact the container image runs: dist/bundle/vmgpu.mjs (scripts/bundle.mjs), started
// as the image starts it (NODE_OPTIONS from deploy/Dockerfile), as `vmgpu agent` against the
// real API server, on a simulated node materialised on disk, registering its device plugins
// with the kubelet's own Go code. This is what proves that bundling kept everything the agent
// needs at run time (client-node, gRPC and the proto files, prom-client, yaml).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startFakeKubelet, startPodResources, type FakeKubelet, type FakePodResources } from '../harness/peers.js';
import { buildBundle, imageEnv } from '../harness/image.js';
import { createSimulatedNode, materialize } from '../../src/simulator/index.js';
import { LABEL_CONFIG, LABEL_STATE } from '../../src/serve/agent/desired.js';
import { adminClient, type Admin, ConfigMount, getNode, setLabels, TWO_CONFIGS } from './agent-helpers.js';
import { eventually } from '../support/wait.js';

const repo = resolve(import.meta.dirname, '..', '..');
const NODE = 'gpu-node-bundle';

describe('the bundled vmgpu (what the image runs)', { timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let admin: Admin;
  let kubelet: FakeKubelet;
  // The kubelet's pod-resources answer, as on a real node: without it the agent changes nothing.
  let pods: FakePodResources;
  let dir: string;
  let child: ChildProcess | null = null;
  let output = '';
  let BUNDLE: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    BUNDLE = buildBundle();
    const image = imageEnv();
    env = { ...process.env, NODE_OPTIONS: image.NODE_OPTIONS, ...image.malloc };
    dir = mkdtempSync(join(tmpdir(), 'vmgpu-bundle-'));
    cp = await startControlPlane();
    admin = adminClient(cp.kubeConfig);
    mkdirSync(join(dir, 'device-plugins'));
    kubelet = await startFakeKubelet(join(dir, 'device-plugins'));
    pods = await startPodResources(join(dir, 'pod-resources.sock'), []);
  });

  after(async () => {
    child?.kill('SIGKILL');
    await kubelet?.stop();
    await pods?.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--version and the model list run from the bundle alone', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    const v = spawnSync(process.execPath, [BUNDLE, '--version'], { encoding: 'utf8', env });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), pkg.version);
    const m = spawnSync(process.execPath, [BUNDLE, 'sim', 'models'], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    assert.match(m.stdout, /L40S\s+10de:26b9\s+SR-IOV vGPU/);
  });

  test('the bundled agent reconciles its node and serves the device plugin; a label change re-types the VFs', async () => {
    await cp.createNode(NODE, { [LABEL_CONFIG]: 'small' });
    const simDir = join(dir, 'sim');
    materialize(createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] }), simDir);
    const mount = new ConfigMount(join(dir, 'config'), TWO_CONFIGS);
    child = spawn(
      process.execPath,
      [BUNDLE, 'agent', '--node-name', NODE, '--kubeconfig', cp.kubeconfigPath, '--simulate', simDir, '--config-file', mount.file, '--state-dir', join(dir, 'state'), '--device-plugin-dir', kubelet.dir, '--pod-resources-socket', pods.socketPath, '--metrics-addr', '127.0.0.1:0', '--log-level', 'warn'],
      { stdio: ['ignore', 'pipe', 'pipe'], env },
    );
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child!.once('exit', r));
    const alive = async () => {
      const code = await Promise.race([exited, new Promise<'running'>((r) => setImmediate(() => r('running')))]);
      assert.equal(code, 'running', `the bundled agent exited:\n${output}`);
    };
    const advertised = async (resource: string) => (await kubelet.state()).find((p) => p.resourceName === resource)?.devices.length ?? 0;
    await eventually('state success from the bundled agent', async () => {
      await alive();
      return (await getNode(admin, NODE)).metadata?.labels?.[LABEL_STATE] === 'success';
    });
    await eventually('the kubelet holds nvidia.com/L40S-1Q with 32 devices', async () => (await advertised('nvidia.com/L40S-1Q')) === 32);
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'large' });
    await eventually('the kubelet holds nvidia.com/L40S-2Q with 24 devices', async () => (await advertised('nvidia.com/L40S-2Q')) === 24);
    await alive();
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `the agent stops cleanly on SIGTERM:\n${output}`);
    child = null;
  });
});
