// A GPU node for end-to-end tests and benchmarks: the real one-node cluster of node.ts, a
// simulated NVIDIA node as its hardware (`vmgpu sim create`), the Helm chart installed with
// the built helm, and the agent run as the chart renders it (chart-agent.ts).
//
// The one substitution for the simulated hardware: the chart's `--sysfs-root=/sys` becomes
// `--simulate=/run/vmgpu-sim` with the simulated node's directory mounted there, so the
// agent's sysfs writes reach the simulator's driver model. Every other flag, env var and
// mount is the chart's; its hostPaths map to the test node's directories (hostPathFor below).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1DaemonSet } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { runChartAgent, type ChartAgent } from './chart-agent.js';
import { buildBundle } from './image.js';
import { startNode, type NodeOptions, type TestNode } from './node.js';
import { freePort } from './procs.js';
import { loadSimulation, SimHostTools } from '../../src/simulator/index.js';
import { enrichWithHostTools, readInventory } from '../../src/inventory/read.js';

const repo = resolve(import.meta.dirname, '..', '..');
export const CHART = join(repo, 'deploy', 'helm', 'vmgpu');
export const NAMESPACE = 'vmgpu-system';
const RELEASE = 'vmgpu';
const SIM_MOUNT = '/run/vmgpu-sim';

export interface GpuNodeOptions extends NodeOptions {
  /** The config file the chart ships (values config.content). */
  config: string;
  /** Labels on the Node before the agent starts (the chart's affinity needs nvidia.com/gpu.workload.config). */
  labels: Record<string, string>;
  /** `vmgpu sim create` arguments (default one L40S in SR-IOV vGPU mode). */
  sim?: string[];
  /** More chart values (merged over the config and the metrics port), e.g. { dra: { enabled: true } }. */
  values?: Record<string, unknown>;
  /** Acts on the simulated node before the agent first starts (e.g. another tool filling the card). */
  prepare?: (simDir: string) => void;
  /** Wait for the agent to be Ready (default), or only alive: an agent the test expects to report failed is never Ready. */
  agentReady?: boolean;
}

export interface GpuNode {
  node: TestNode;
  core: CoreV1Api;
  simDir: string;
  agent: ChartAgent;
  /** The objects `helm template` rendered for these values. */
  rendered: { kind: string; metadata: { name: string } }[];
  /** The chart's hostPath -> the test directory standing in for it. */
  hostPathFor(path: string): string;
  /** vGPU profile per VF address, read from the simulated node's saved state. */
  vfProfiles(): Promise<Record<string, string>>;
  /** Runs the built CLI; returns exit code and output. */
  vmgpu(args: string[]): { code: number; stdout: string; stderr: string };
  setLabels(labels: Record<string, string | null>): Promise<void>;
  /**
   * Starts the agent again (after agent.stop()). `edit` changes the rendered DaemonSet first, for
   * a test of what a values change would render (the caller says which value in its name).
   */
  restartAgent(edit?: (ds: V1DaemonSet) => V1DaemonSet, opts?: { ready?: boolean }): Promise<ChartAgent>;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...(env ? { env } : {}) });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Renders the chart with `helm template` and installs it with `helm install` (the built helm), with the test's config and a free metrics port. */
async function installChart(node: TestNode, config: string, extra: Record<string, unknown> = {}): Promise<GpuNode['rendered']> {
  const home = join(node.dir, 'helm');
  mkdirSync(home, { recursive: true });
  const values = join(home, 'values.yaml');
  writeFileSync(values, stringify({ ...extra, config: { content: config }, agent: { metricsPort: await freePort(), defaultConfig: '' } }));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') };
  const helm = (args: string[]): string => {
    const r = run(node.tools.helm, [...args, '--namespace', NAMESPACE, '-f', values], env);
    if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const rendered = parseAllDocuments(helm(['template', RELEASE, CHART])).map((d) => d.toJS() as { kind: string; metadata: { name: string } } | null);
  helm(['install', RELEASE, CHART, '--create-namespace', '--kubeconfig', node.cp.kubeconfigPath]);
  return rendered.filter((d) => d !== null);
}

/** The chart's hostPaths -> the test directories standing in for them (longest prefix first); others are an error. */
function standIns(node: TestNode, simDir: string): (path: string) => string {
  const stand: [string, string][] = [
    ['/var/lib/kubelet', node.kubeletRoot],
    ['/var/lib/vmgpu', join(node.dir, 'host', 'var', 'lib', 'vmgpu')],
    ['/dev/vfio', node.devVfioDir],
    // The CDI specs DRA drivers write: the node's containerd reads them there (node.ts).
    ['/var/run/cdi', join(node.dir, 'cdi')],
    ['/sys', join(simDir, 'sys')],
    ['/usr/lib/nvidia', join(simDir, 'host', 'usr', 'lib', 'nvidia')],
    ['/lib/modules', join(simDir, 'host', 'lib', 'modules')],
    // agent.driverRoot "/": the host driver's nvidia-smi and libnvidia-ml. The simulated node's
    // tools answer for them (--simulate), so these stand in empty: no host tool is run.
    ['/usr/bin', join(node.dir, 'host', 'usr', 'bin')],
    ['/usr/lib/x86_64-linux-gnu', join(node.dir, 'host', 'usr', 'lib', 'x86_64-linux-gnu')],
  ];
  for (const d of ['usr/bin', 'usr/lib/x86_64-linux-gnu']) mkdirSync(join(node.dir, 'host', d), { recursive: true });
  return (path) => {
    for (const [prefix, dir] of stand) if (path === prefix || path.startsWith(`${prefix}/`)) return dir + path.slice(prefix.length);
    throw new Error(`the chart mounts hostPath ${path}, for which the test node has no stand-in; add one to test/harness/gpu-node.ts`);
  };
}

export async function startGpuNode(o: GpuNodeOptions): Promise<GpuNode> {
  const node = await startNode(o);
  try {
    return await setUp(node, o);
  } catch (e) {
    await node.stop();
    throw e;
  }
}

async function setUp(node: TestNode, o: GpuNodeOptions): Promise<GpuNode> {
  const cli = join(repo, 'dist', 'cli', 'main.js');
  const vmgpu = (args: string[]): ReturnType<typeof run> => run(process.execPath, [cli, ...args]);
  const simDir = join(node.dir, 'sim');
  const sim = vmgpu(['sim', 'create', '--out', simDir, ...(o.sim ?? ['--model', 'L40S', '--gpus', '1', '--mode', 'sriov-vgpu'])]);
  if (sim.code !== 0) throw new Error(`vmgpu sim create failed (exit ${sim.code}; is the CLI built? npm run build): ${sim.stderr}`);
  o.prepare?.(simDir);

  const rendered = await installChart(node, o.config, o.values);
  const core = node.cp.kubeConfig.makeApiClient(CoreV1Api);
  const setLabels = async (labels: Record<string, string | null>): Promise<void> => {
    await core.patchNode({ name: node.name, body: { metadata: { labels } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  };
  await setLabels(o.labels);

  const hostPathFor = standIns(node, simDir);
  const bundle = buildBundle();
  const daemonSet = rendered.find((x) => x.kind === 'DaemonSet') as unknown as V1DaemonSet;
  const configMaps = rendered.filter((x) => x.kind === 'ConfigMap') as never[];
  let runs = 0;
  const startAgent = async (edit: (ds: V1DaemonSet) => V1DaemonSet = (ds) => ds, ready = true): Promise<ChartAgent> => {
    const dir = join(node.dir, `agent-${++runs}`);
    mkdirSync(dir);
    const a = await runChartAgent({
      daemonSet: edit(structuredClone(daemonSet)),
      configMaps,
      admin: node.cp.kubeConfig,
      apiServer: { host: '127.0.0.1', port: Number(new URL(node.cp.server).port), caPem: node.cp.caPem },
      nodeName: node.name,
      hostPath: hostPathFor,
      bundle,
      dir,
      standInImage: node.images.busybox,
      substitute: { args: { '--sysfs-root=/sys': `--simulate=${SIM_MOUNT}` }, mounts: [{ source: simDir, mountPath: SIM_MOUNT }] },
    });
    await (ready ? a.ready() : a.live());
    return a;
  };
  const g: GpuNode = {
    node,
    core,
    simDir,
    agent: await startAgent(undefined, o.agentReady ?? true),
    rendered,
    hostPathFor,
    vmgpu,
    setLabels,
    async vfProfiles() {
      const sim = loadSimulation(simDir);
      const inv = readInventory(sim.port, { kernelRelease: sim.kernelRelease });
      await enrichWithHostTools(inv, new SimHostTools(sim)); // names the types the driver lists only through nvidia-smi
      const out: Record<string, string> = {};
      for (const gpu of inv.gpus) for (const vf of gpu.vfs) out[vf.address] = vf.currentProfile ?? '';
      return out;
    },
    async restartAgent(edit, opts) {
      g.agent = await startAgent(edit, opts?.ready ?? true);
      return g.agent;
    },
    async stop() {
      await g.agent.stop();
      await node.stop();
    },
  };
  return g;
}
