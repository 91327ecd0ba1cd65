/**
 * Node agent benchmark against a real kube-apiserver (test/harness/controlplane.ts).
 *
 *   node --import tsx bench/agent.bench.ts [--flips 20] [--idle-seconds 60] ["--try-node-options=FLAGS" ...]
 *
 * 1. Converge latency: a simulated 8 x L40S node (32 VFs each), the agent
 *    in-process, the Go fake kubelet registered. Each run patches
 *    `nvidia.com/vgpu.config` (alternating L40S-1Q x32 / L40S-2Q x24 per GPU:
 *    256 or 192 VFs re-typed) and stops the clock when the agent's PATCH of
 *    `nvidia.com/vgpu.config.state=success` for that config has been accepted
 *    by the API server; at that moment every VF must be programmed and the
 *    device plugin must advertise the new count (both asserted, untimed).
 *    Compared with the seed 001 loop: a change waits for its 60 s period,
 *    30 s on average.
 * 2. Idle agent: `vmgpu agent --simulate DIR` as a child process (compiled
 *    with tsc to ~/.cache/vmgpu/agent-build, not through tsx), after it has
 *    applied its config: RSS after the idle window, and the API requests it
 *    made during the window, counted from the API server's audit log (by user
 *    agent `vmgpu-agent/*`) -- apiserver_request_total has no per-client label.
 * Goals (issue 6): p99 <= 200 ms; idle RSS <= 64 MiB; no polling requests.
 */
import { openSimulated } from '../src/machine/simulated.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startControlPlane } from '../test/harness/controlplane.js';
import { startFakeKubelet } from '../test/harness/peers.js';
import { buildBundle, imageEnv } from '../test/harness/image.js';
import { createSimulatedNode, materialize } from '../src/simulator/index.js';
import { Agent } from '../src/serve/agent/agent.js';
import { Kube, loadKubeConfig } from '../src/serve/kube/kube.js';
import { silentLogger } from '../src/serve/kube/logger.js';
import { LABEL_CONFIG, LABEL_STATE } from '../src/serve/agent/desired.js';
import { adminClient, ConfigMount, getNode, setLabels, TWO_CONFIGS, vfProfiles } from '../test/integration/agent-helpers.js';
import { eventually, sleep } from '../test/support/wait.js';

const { values } = parseArgs({ options: { flips: { type: 'string', default: '20' }, 'idle-seconds': { type: 'string', default: '60' }, 'try-node-options': { type: 'string', multiple: true, default: [] } } });
const FLIPS = Number(values.flips);
const IDLE_S = Number(values['idle-seconds']);
const repo = path.resolve(import.meta.dirname, '..');
/** What deploy/Dockerfile sets for the agent: NODE_OPTIONS, and the glibc malloc settings. */
const { NODE_OPTIONS: SHIPPED_NODE_OPTIONS, malloc: SHIPPED_MALLOC_ENV } = imageEnv();

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

function buildDist(): string {
  const base = path.join(os.homedir(), '.cache', 'vmgpu', 'agent-build');
  fs.rmSync(path.join(base, 'dist'), { recursive: true, force: true });
  fs.mkdirSync(base, { recursive: true });
  for (const l of ['proto', 'node_modules']) if (!fs.existsSync(path.join(base, l))) fs.symlinkSync(path.join(repo, l), path.join(base, l));
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(base, 'package.json'));
  const r = spawnSync(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(repo, 'tsconfig.build.json'), '--outDir', path.join(base, 'dist'), '--sourceMap', 'false'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('tsc build of the agent failed (see above)');
  return path.join(base, 'dist', 'cli', 'main.js');
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-agent-bench-'));
const auditPolicy = path.join(dir, 'audit-policy.yaml');
const auditLog = path.join(dir, 'audit.log');
fs.writeFileSync(auditPolicy, 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: ["ResponseStarted", "ResponseComplete", "Panic"]\nrules:\n- level: Metadata\n');
const cp = await startControlPlane({ apiServerArgs: [`--audit-policy-file=${auditPolicy}`, `--audit-log-path=${auditLog}`, '--audit-log-format=json', '--audit-log-mode=blocking'] });
const admin = adminClient(cp.kubeConfig);
let child: ChildProcess | null = null;
const results: Record<string, unknown> = {};
try {
  // ---------------------------------------------------------------- 1. converge latency
  const NODE = 'bench-node';
  await cp.createNode(NODE);
  fs.mkdirSync(path.join(dir, 'dp'));
  const kubelet = await startFakeKubelet(path.join(dir, 'dp'));
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 8, mode: 'sriov-vgpu' }] });
  const machine = openSimulated(sim);
  const mount = new ConfigMount(path.join(dir, 'config'), TWO_CONFIGS);
  const agent = new Agent({
    nodeName: NODE,
    machine,
    kube: new Kube(loadKubeConfig(cp.kubeconfigPath), { userAgent: 'vmgpu-bench/inproc' }),
    configFile: mount.file,
    stateDir: path.join(dir, 'state'),
    devicePluginDir: kubelet.dir,
    podResourcesSocket: path.join(dir, 'none.sock'),
    // Declared: the benchmark measures the agent, not the kubelet's answer; VM protection rests on open VFIO files.
    noKubelet: true,
    metricsAddr: null,
    logger: silentLogger,
    validateIntervalMs: 0,
  });
  await agent.start();
  const published = (config: string) =>
    new Promise<void>((resolve) => {
      const on = (e: { state: string | null }) => {
        const s = agent.currentStatus();
        if (e.state === 'success' && s?.config === config) {
          agent.events.off('published', on);
          resolve();
        }
      };
      agent.events.on('published', on);
    });
  const want = { small: { profile: 'L40S-1Q', n: 256 }, large: { profile: 'L40S-2Q', n: 192 } } as const;
  const internal: number[] = [];
  agent.events.on('reconciled', (e: { ms: number; writes: number }) => {
    if (e.writes > 0) internal.push(e.ms);
  });
  const flip = async (config: 'small' | 'large') => {
    const done = published(config);
    const t0 = performance.now();
    await setLabels(admin, NODE, { [LABEL_CONFIG]: config });
    await done;
    const ms = performance.now() - t0;
    const prof = await vfProfiles(machine);
    if (prof[want[config].profile] !== want[config].n) throw new Error(`after ${config}: VFs are ${JSON.stringify(prof)}`);
    const dp = agent.devicePluginManager()?.status().find((r) => r.resourceName === `nvidia.com/${want[config].profile}`);
    if (dp?.devices.length !== want[config].n) throw new Error(`after ${config}: the device plugin serves ${dp?.devices.length ?? 0} devices`);
    return ms;
  };
  await flip('small'); // warm-up: first apply, plugin start
  await flip('large');
  const lat: number[] = [];
  internal.length = 0;
  for (let i = 0; i < FLIPS; i++) lat.push(await flip(i % 2 === 0 ? 'small' : 'large'));
  await eventually('the fake kubelet sees the last count', async () => (await kubelet.state()).some((p) => p.devices.length === want[FLIPS % 2 === 0 ? 'large' : 'small'].n));
  const median = pct(lat, 50);
  const p99 = pct(lat, 99);
  results.converge = { flips: FLIPS, vfsPerFlip: '256 (1Q) / 192 (2Q) on 8 GPUs', medianMs: +median.toFixed(1), p90Ms: +pct(lat, 90).toFixed(1), p99Ms: +p99.toFixed(1), maxMs: +Math.max(...lat).toFixed(1), reconcileMedianMs: +pct(internal, 50).toFixed(1), reconcileP99Ms: +pct(internal, 99).toFixed(1), seed001AverageWaitMs: 30_000, speedupVsSeed001: Math.round(30_000 / median), goalP99Ms: 200, goalMet: p99 <= 200 };
  await agent.stop();
  await kubelet.stop();

  // ---------------------------------------------------------------- 2. idle agent as a child process
  // Baseline: the tsc build (dist/cli/main.js, every module loaded from node_modules). Shipped:
  // the esbuild bundle the container image runs (scripts/bundle.mjs), with the image's NODE_OPTIONS.
  const tscMain = buildDist();
  const bundleMain = buildBundle();
  const variants = [
    { build: 'tsc (baseline)', main: tscMain, nodeOptions: '', env: {} },
    { build: 'tsc', main: tscMain, nodeOptions: SHIPPED_NODE_OPTIONS, env: {} },
    { build: 'bundle', main: bundleMain, nodeOptions: '', env: {} },
    { build: 'bundle', main: bundleMain, nodeOptions: SHIPPED_NODE_OPTIONS, env: {} },
    { build: 'bundle (shipped)', main: bundleMain, nodeOptions: SHIPPED_NODE_OPTIONS, env: SHIPPED_MALLOC_ENV },
    // "--try-node-options=FLAGS" (repeatable): more variants of the shipped bundle, to compare V8 flags.
    ...(values['try-node-options'] ?? []).map((o) => ({ build: 'bundle', main: bundleMain, nodeOptions: o, env: SHIPPED_MALLOC_ENV })),
  ];
  const NODE2 = 'bench-idle';
  await cp.createNode(NODE2, { [LABEL_CONFIG]: 'small' });
  const simDir = path.join(dir, 'sim');
  materialize(createSimulatedNode({ gpus: [{ model: 'L40S', count: 8, mode: 'sriov-vgpu' }] }), simDir);
  fs.mkdirSync(path.join(dir, 'dp2'));
  const kubelet2 = await startFakeKubelet(path.join(dir, 'dp2'));
  const idle: Record<string, unknown>[] = [];
  const countAgentRequests = () =>
    fs
      .readFileSync(auditLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"userAgent":"vmgpu-agent/agent'))
      .map((l) => JSON.parse(l) as { verb: string; objectRef?: { resource?: string } })
      .map((e) => `${e.verb} ${e.objectRef?.resource ?? ''}`);
  for (const [i, { build, main, nodeOptions, env }] of variants.entries()) {
    await setLabels(admin, NODE2, { [LABEL_STATE]: null });
    const auditLinesAtSpawn = countAgentRequests().length;
    child = spawn(
      process.execPath,
      [...(nodeOptions ? nodeOptions.split(' ') : []), main, 'agent', '--node-name', NODE2, '--kubeconfig', cp.kubeconfigPath, '--simulate', simDir, '--config-file', mount.file, '--state-dir', path.join(dir, `state-idle-${i}`), '--device-plugin-dir', kubelet2.dir, '--no-kubelet', '--metrics-addr', '127.0.0.1:0', '--log-level', 'warn'],
      { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } },
    );
    await eventually('the child agent is watching', async () => fs.readFileSync(auditLog, 'utf8').includes('"userAgent":"vmgpu-agent/agent'), 60_000, 100);
    await eventually('the child agent reports success', async () => (await getNode(admin, NODE2)).metadata?.labels?.[LABEL_STATE] === 'success', 120_000, 250);
    await sleep(6000); // let start-up settle (the post-apply validation runs 3 s after an apply)
    const before = countAgentRequests();
    await sleep(IDLE_S * 1000);
    const during = countAgentRequests().slice(before.length);
    const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
    idle.push({ build, nodeOptions: nodeOptions || '(default)', env: Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ') || '(default)', rssMiB: +(rssKiB / 1024).toFixed(1), goalMiB: 64, requestsDuringIdle: during.length, idleSeconds: IDLE_S, requestsPerMinute: +((during.length * 60) / IDLE_S).toFixed(2), requests: during, startupRequests: before.length - auditLinesAtSpawn });
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
    child = null;
  }
  results.idle = idle;
  const rss = (b: string, o: string) => (idle.find((x) => x.build === b && x.nodeOptions === o)?.rssMiB as number) ?? NaN;
  const base = rss('tsc (baseline)', '(default)');
  const shipped = rss('bundle (shipped)', SHIPPED_NODE_OPTIONS);
  results.idleSummary = { baselineRssMiB: base, shippedRssMiB: shipped, shippedOverBaseline: +(shipped / base).toFixed(2), goalMiB: 64, goalMet: shipped <= 64 };
  await kubelet2.stop();
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
} finally {
  child?.kill('SIGKILL');
  await cp.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
