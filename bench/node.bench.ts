/**
 * The real node: start-up time and memory of the one-node cluster (test/harness/node.ts), and
 * how fast the agent's device plugins are registered again after a kubelet restart.
 * Run (as root, after `node scripts/prepare-integration.mjs` and `npm run build`):
 *   node --import tsx bench/node.bench.ts [--restarts 20]
 *
 * Kubelet restarts: the kubelet is stopped (SIGTERM) and started again, N times. For each:
 *   start -> /healthz           the kubelet's own start-up (the baseline, same run)
 *   start -> all registered     every resource back in the pod-resources API's GetAllocatableResources
 *                               with all its devices (the agent noticed the new kubelet.sock and registered again)
 *   start -> Node allocatable   the API server's Node shows the counts again (node status sync)
 * Goal: all registered within 1 s of the kubelet's start (docs/testing.md).
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { startGpuNode } from '../test/harness/gpu-node.js';
import { PodResourcesReader } from '../test/harness/node-pods.js';
import { LABEL_CONFIG, LABEL_STATE, LABEL_WORKLOAD } from '../src/serve/agent/desired.js';

const argN = process.argv.indexOf('--restarts');
const RESTARTS = argN > 0 ? Number(process.argv[argN + 1]) : 20;
const WANT = { 'nvidia.com/L40S-12Q': 4, 'nvidia.com/L40S-24Q': 2 };
const CONFIG = `version: v1
vgpu-configs:
  two-sizes:
    - devices: [0]
      vgpu-devices: { L40S-12Q: 4 }
    - devices: [1]
      vgpu-devices: { L40S-24Q: 2 }
`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0]} ms  median ${s[Math.floor(s.length / 2)]} ms  max ${s[s.length - 1]} ms  (n=${s.length})`;
};

async function until<V>(what: string, fn: () => Promise<V | null>, timeoutMs = 60_000, everyMs = 10): Promise<V> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function allRegistered(socket: string): Promise<boolean> {
  const r = new PodResourcesReader(socket);
  try {
    const a = await r.allocatable();
    return Object.entries(WANT).every(([k, n]) => a[k]?.length === n);
  } finally {
    r.close();
  }
}

console.log(`real node benchmark: ${RESTARTS} kubelet restarts; ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const t0 = Date.now();
const g = await startGpuNode({ config: CONFIG, labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'two-sizes' }, sim: ['--model', 'L40S', '--gpus', '2', '--mode', 'sriov-vgpu'] });
try {
  console.log(`\nnode start-up (control plane, containerd, kubelet, scheduler, controller-manager to a Ready, schedulable Node): ${g.node.startupMs} ms`);
  console.log(`  steps (ms since start): ${JSON.stringify(g.node.timings)}`);
  console.log(`  + agent as the chart renders it, to ready: ${Date.now() - t0 - g.node.startupMs} ms`);
  const node = () => g.core.readNode({ name: g.node.name });
  await until('the config applied', async () => ((await node()).metadata?.labels?.[LABEL_STATE] === 'success' ? true : null));
  await until('all resources registered', async () => ((await allRegistered(g.node.podResourcesSocket)) ? true : null));
  await sleep(2000);
  const mem = { ...g.node.memoryUsage(), agent: Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${g.agent.agentPid()}/status`, 'utf8'))?.[1] ?? 0) };
  const total = Object.values(mem).reduce((a, b) => a + b, 0);
  console.log(`\nRSS with the agent's plugins registered and one pod, the agent's stand-in (MiB): ${Object.entries(mem).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)}`).join(', ')}; total ${(total / 1024).toFixed(0)}`);

  const healthz: number[] = [];
  const registered: number[] = [];
  const allocatable: number[] = [];
  for (let i = 0; i < RESTARTS; i++) {
    const r = await g.node.restartKubelet();
    healthz.push(r.healthyAt - r.startedAt);
    registered.push((await until('all resources registered', async () => ((await allRegistered(g.node.podResourcesSocket)) ? Date.now() : null))) - r.startedAt);
    allocatable.push(
      (await until('Node allocatable restored', async () => {
        const a = (await node()).status?.allocatable ?? {};
        return Object.entries(WANT).every(([k, n]) => Number(a[k] ?? 0) === n) ? Date.now() : null;
      }, 60_000, 20)) - r.startedAt,
    );
  }
  console.log(`\nkubelet restart (${RESTARTS}x), times from the new kubelet's start:`);
  console.log(`  /healthz (baseline)              ${stats(healthz)}`);
  console.log(`  all resources registered         ${stats(registered)}`);
  console.log(`  registered minus /healthz        ${stats(registered.map((x, i) => x - healthz[i]!))}`);
  console.log(`  Node allocatable restored        ${stats(allocatable)}`);
  const median = [...registered].sort((a, b) => a - b)[Math.floor(registered.length / 2)]!;
  console.log(`  goal: all registered <= 1000 ms: ${median <= 1000 ? 'met' : 'MISSED'} at the median`);
} finally {
  await g.stop();
}
