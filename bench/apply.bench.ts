/**
 * Config engine benchmark: inventory + plan + apply, from empty to full and
 * as a no-op re-apply, on the in-memory simulator and on a materialised
 * directory tree (DiskBackend over `materialize(node, dir)`, as on a host).
 *
 *   node --import tsx bench/apply.bench.ts [--runs 15] [--warmup 3]
 *
 * Scenarios (each timed from "node is as found" to "apply returned"):
 * - 8 x L40S, VFs enabled and empty -> L40S-1Q x32 on each (256 VF writes);
 * - 8 x A100 80GB (mdev on VFs), VFs enabled and empty -> A100D-4C x20 on each
 *   (160 mdevs). Simulator only: a plain directory tree has no driver, so
 *   writing a UUID to an mdev type's `create` makes no device (the applier's
 *   read-back rightly fails). On the tree only the no-op re-apply of an
 *   already configured A100 node is measured (reads only);
 * - no-op re-apply of each full node: must make zero writes.
 * Baselines measured in the same run: the inventory read alone, and the bare
 * writes (the same 256 type IDs written straight through the port, no plan,
 * no read-back): the floor any applier pays.
 *
 * Reported: median and p90 of our own CPU time (process.cpuUsage, user+system)
 * and wall time. Goals (issue 3): full apply of 256 VFs <= 100 ms CPU; no-op
 * re-apply <= 20 ms with zero writes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { applyPlan } from '../src/apply/apply.js';
import { enrichWithHostTools, readInventory } from '../src/inventory/read.js';
import type { Inventory } from '../src/inventory/types.js';
import { plan as makePlan } from '../src/plan/plan.js';
import { parseConfig, selectConfig } from '../src/spec/load.js';
import type { ConfigFile } from '../src/spec/config.js';
import { createSimulatedNode, materialize, SimHostTools, type SimulatedNode } from '../src/simulator/index.js';
import type { Root, SysfsBackend } from '../src/sysfs/backend.js';
import { DiskBackend } from '../src/sysfs/disk-backend.js';
import type { HostTools } from '../src/sysfs/host-tools.js';
import type { PciAddress } from '../src/model/pci.js';
import { SysfsPort } from '../src/sysfs/port.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, warmup: { type: 'string', default: '3' } } });
const RUNS = Math.max(5, Number(values.runs));
const WARMUP = Math.max(1, Number(values.warmup));
const GOAL_FULL_CPU_MS = 100;
const GOAL_NOOP_MS = 20;

const L40S_CFG = parseConfig('version: v1\nvgpu-configs:\n  full:\n    - devices: all\n      vgpu-devices:\n        L40S-1Q: 32\n', 'l40s.yaml');
const A100_CFG = parseConfig('version: v1\nvgpu-configs:\n  full:\n    - devices: all\n      vgpu-devices:\n        A100D-4C: 20\n', 'a100.yaml');

interface Sample {
  cpuMs: number;
  wallMs: number;
  writes: number;
}

/** A backend that counts writes (DiskBackend has no write log). */
class Counting implements SysfsBackend {
  writes = 0;
  constructor(private readonly inner: SysfsBackend) {}
  get description() {
    return this.inner.description;
  }
  display(r: Root, p: string) {
    return this.inner.display(r, p);
  }
  read(r: Root, p: string) {
    return this.inner.read(r, p);
  }
  write(r: Root, p: string, d: string) {
    this.writes++;
    this.inner.write(r, p, d);
  }
  readlink(r: Root, p: string) {
    return this.inner.readlink(r, p);
  }
  list(r: Root, p: string) {
    return this.inner.list(r, p);
  }
  kind(r: Root, p: string) {
    return this.inner.kind(r, p);
  }
  exists(r: Root, p: string) {
    return this.inner.exists(r, p);
  }
}

/** Host tools for a plain tree: no NVIDIA tools installed (mixed-size mode unknown, no nvidia-smi). */
const noTools: HostTools = {
  sriovManageEnable: async () => {
    throw new Error('sriov-manage is not installed on the tree');
  },
  nvidiaSmiSupportedTypes: async () => undefined,
  heterogeneousMode: async () => undefined,
  setHeterogeneousMode: async () => {
    throw new Error('nvidia-smi is not installed on the tree');
  },
  sriovManageDisable: async () => {
    throw new Error('sriov-manage is not installed on the tree');
  },
  migMode: async () => undefined,
  setMigMode: async () => {
    throw new Error('nvidia-smi is not installed on the tree');
  },
  gpuInstances: async () => undefined,
  createGpuInstance: async () => {
    throw new Error('nvidia-smi is not installed on the tree');
  },
  destroyGpuInstance: async () => {
    throw new Error('nvidia-smi is not installed on the tree');
  },
  nvlinkPairs: async () => undefined,
};

async function inventory(port: SysfsPort, tools: HostTools, kernelRelease: string): Promise<Inventory> {
  const inv = readInventory(port, { kernelRelease });
  await enrichWithHostTools(inv, tools);
  return inv;
}

/** The engine end to end, as `vmgpu apply` runs it (minus argument parsing and printing). */
async function engine(port: SysfsPort, tools: HostTools, cfg: ConfigFile, kernelRelease: string): Promise<number> {
  const inv = await inventory(port, tools, kernelRelease);
  const entries = selectConfig(cfg, 'full');
  const p = makePlan(inv, cfg, { name: 'full', entries, line: 0 }, { nodeId: 'bench', inUse: new Map() });
  if (p.errors.length) throw new Error(`bench config rejected: ${p.errors.map((e) => e.message).join('; ')}`);
  const res = await applyPlan(p, { port, tools, sleep: async () => {} });
  if (res.failure) throw new Error(`apply failed: ${res.failure.message}`);
  return res.writes;
}

async function timed(setup: () => Promise<() => Promise<number>>): Promise<Sample> {
  const run = await setup();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const writes = await run();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { cpuMs: (c.user + c.system) / 1000, wallMs, writes };
}

async function bench(name: string, setup: () => Promise<() => Promise<number>>, goal?: { cpuMs?: number; wallMs?: number; writes?: number }): Promise<Sample> {
  for (let i = 0; i < WARMUP; i++) await timed(setup);
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await timed(setup));
  const q = (k: 'cpuMs' | 'wallMs', f: number) => {
    const xs = samples.map((s) => s[k]).sort((a, b) => a - b);
    return xs[Math.min(xs.length - 1, Math.floor(f * xs.length))]!;
  };
  const med = { cpuMs: q('cpuMs', 0.5), wallMs: q('wallMs', 0.5), writes: samples[0]!.writes };
  const writesVary = samples.some((s) => s.writes !== med.writes);
  const verdict: string[] = [];
  if (goal?.cpuMs !== undefined) verdict.push(med.cpuMs <= goal.cpuMs ? `cpu<=${goal.cpuMs}ms ok` : `cpu>${goal.cpuMs}ms MISSED`);
  if (goal?.wallMs !== undefined) verdict.push(med.wallMs <= goal.wallMs ? `wall<=${goal.wallMs}ms ok` : `wall>${goal.wallMs}ms MISSED`);
  if (goal?.writes !== undefined) verdict.push(med.writes === goal.writes && !writesVary ? `writes=${goal.writes} ok` : `writes=${med.writes} MISSED`);
  console.log(
    `${name.padEnd(58)} cpu ${med.cpuMs.toFixed(1).padStart(7)} ms (p90 ${q('cpuMs', 0.9).toFixed(1).padStart(6)})  wall ${med.wallMs.toFixed(1).padStart(7)} ms (p90 ${q('wallMs', 0.9).toFixed(1).padStart(6)})  writes ${String(med.writes).padStart(4)}${writesVary ? ' (varies!)' : ''}  ${verdict.join(', ')}`,
  );
  return med;
}

const l40sNode = () => createSimulatedNode({ gpus: [{ model: 'L40S', count: 8, mode: 'sriov-vgpu' }] });
const a100Node = () => createSimulatedNode({ gpus: [{ model: 'A100', count: 8, mode: 'mdev-vgpu' }] });

async function configured(make: () => SimulatedNode, cfg: ConfigFile): Promise<SimulatedNode> {
  const node = make();
  await engine(node.port, new SimHostTools(node), cfg, node.kernelRelease);
  return node;
}

/**
 * A fresh materialised tree of `node` and a port over it. Host tools: the
 * node's nvidia-smi listing (a vGPU host has nvidia-smi; without it or the
 * catalog cache, the IDs of fully configured VFs have no names), nothing else.
 */
function tree(node: SimulatedNode): { port: SysfsPort; counting: Counting; dir: string; tools: HostTools } {
  const sim = new SimHostTools(node);
  const tools: HostTools = { ...noTools, nvidiaSmiSupportedTypes: (pf) => sim.nvidiaSmiSupportedTypes(pf) };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-bench-apply-'));
  materialize(node, dir);
  const counting = new Counting(new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') }));
  return { port: new SysfsPort(counting), counting, dir, tools };
}
const trees: string[] = [];
process.on('exit', () => {
  for (const d of trees) fs.rmSync(d, { recursive: true, force: true });
});

console.log(`vmgpu config engine benchmark: ${RUNS} runs (+${WARMUP} warm-up) per line, medians; node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}`);
console.log('\n-- in-memory simulator --');
await bench('baseline: inventory only, 8 x L40S (256 VFs)', async () => {
  const node = l40sNode();
  const tools = new SimHostTools(node);
  return async () => {
    await inventory(node.port, tools, node.kernelRelease);
    return node.writes();
  };
});
await bench('baseline: 256 bare type writes, no plan/read-back', async () => {
  const node = l40sNode();
  const id = node.gpus[0]!.types.find((t) => t.profile === 'L40S-1Q')!.id;
  const vfs = node.gpus.flatMap((g) => g.vfs.map((v) => v.fn.addr as PciAddress));
  return async () => {
    for (const vf of vfs) node.port.writeCurrentVgpuType(vf, id);
    return node.writes();
  };
});
await bench('full apply: 8 x L40S -> L40S-1Q x32 (256 VFs)', async () => {
  const node = l40sNode();
  return () => engine(node.port, new SimHostTools(node), L40S_CFG, node.kernelRelease);
}, { cpuMs: GOAL_FULL_CPU_MS, writes: 256 });
await bench('no-op re-apply: 8 x L40S full', async () => {
  const node = await configured(l40sNode, L40S_CFG);
  return async () => {
    const w = node.writes();
    await engine(node.port, new SimHostTools(node), L40S_CFG, node.kernelRelease);
    return node.writes() - w;
  };
}, { cpuMs: GOAL_NOOP_MS, wallMs: GOAL_NOOP_MS, writes: 0 });
await bench('full apply: 8 x A100 -> A100D-4C x20 (160 mdevs)', async () => {
  const node = a100Node();
  return () => engine(node.port, new SimHostTools(node), A100_CFG, node.kernelRelease);
}, { writes: 160 });
await bench('baseline: inventory only, 8 x A100 full (no-op floor)', async () => {
  const node = await configured(a100Node, A100_CFG);
  const tools = new SimHostTools(node);
  return async () => {
    const w = node.writes();
    await inventory(node.port, tools, node.kernelRelease);
    return node.writes() - w;
  };
});
await bench('no-op re-apply: 8 x A100 full', async () => {
  const node = await configured(a100Node, A100_CFG);
  return async () => {
    const w = node.writes();
    await engine(node.port, new SimHostTools(node), A100_CFG, node.kernelRelease);
    return node.writes() - w;
  };
}, { cpuMs: GOAL_NOOP_MS, wallMs: GOAL_NOOP_MS, writes: 0 });

console.log('\n-- materialised directory tree (DiskBackend; plain files, no driver behind them) --');
await bench('baseline: inventory only, 8 x L40S (256 VFs)', async () => {
  const t = tree(l40sNode());
  trees.push(t.dir);
  return async () => {
    await inventory(t.port, t.tools, '6.8.0-49-generic');
    return t.counting.writes;
  };
});
await bench('baseline: 256 bare type writes, no plan/read-back', async () => {
  const node = l40sNode();
  const id = node.gpus[0]!.types.find((t) => t.profile === 'L40S-1Q')!.id;
  const vfs = node.gpus.flatMap((g) => g.vfs.map((v) => v.fn.addr as PciAddress));
  const t = tree(node);
  trees.push(t.dir);
  return async () => {
    for (const vf of vfs) t.port.writeCurrentVgpuType(vf, id);
    return t.counting.writes;
  };
});
await bench('full apply: 8 x L40S -> L40S-1Q x32 (256 VFs)', async () => {
  const t = tree(l40sNode());
  trees.push(t.dir);
  return () => engine(t.port, t.tools, L40S_CFG, '6.8.0-49-generic');
}, { cpuMs: GOAL_FULL_CPU_MS, writes: 256 });
await bench('baseline: inventory only, 8 x L40S full (no-op floor)', async () => {
  const t = tree(await configured(l40sNode, L40S_CFG));
  trees.push(t.dir);
  return async () => {
    await inventory(t.port, t.tools, '6.8.0-49-generic');
    return t.counting.writes;
  };
});
await bench('no-op re-apply: 8 x L40S full', async () => {
  const t = tree(await configured(l40sNode, L40S_CFG));
  trees.push(t.dir);
  return () => engine(t.port, t.tools, L40S_CFG, '6.8.0-49-generic');
}, { cpuMs: GOAL_NOOP_MS, wallMs: GOAL_NOOP_MS, writes: 0 });
await bench('baseline: inventory only, 8 x A100 full (no-op floor)', async () => {
  const t = tree(await configured(a100Node, A100_CFG));
  trees.push(t.dir);
  return async () => {
    await inventory(t.port, t.tools, '6.8.0-49-generic');
    return t.counting.writes;
  };
});
await bench('no-op re-apply: 8 x A100 full (160 mdevs)', async () => {
  const t = tree(await configured(a100Node, A100_CFG));
  trees.push(t.dir);
  return () => engine(t.port, t.tools, A100_CFG, '6.8.0-49-generic');
}, { cpuMs: GOAL_NOOP_MS, wallMs: GOAL_NOOP_MS, writes: 0 });
console.log('\n(full apply of 8 x A100 on a tree is not measured: without a driver, writing to `create` makes no mdev.)');
