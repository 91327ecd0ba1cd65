// Shared pieces of the agent's end-to-end tests and benchmark: a Context over an
// in-memory simulated node, a kubelet-style ConfigMap mount (..data symlink swap),
// a small admin client on the agent's own API client, and polling helpers.
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../../src/cli/context.js';
import { enrichWithHostTools, readInventory } from '../../src/inventory/read.js';
import { DEFAULT_PCI_IDS_PATHS, loadFirstPciIds } from '../../src/inventory/pciids.js';
import { SimHostTools, type SimulatedNode } from '../../src/simulator/index.js';
import { KubeClient, loadKubeconfigFile } from '../../src/serve/agent/kube.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A Context whose port and tools are the simulated node (no disk round trip). */
export function simContext(sim: SimulatedNode): Context {
  const pciIds = loadFirstPciIds(DEFAULT_PCI_IDS_PATHS);
  const tools = new SimHostTools(sim);
  const ctx: Context = {
    port: sim.port,
    tools,
    pciIds,
    catalogCache: undefined,
    kernelRelease: sim.kernelRelease,
    sim,
    done: () => {},
    inventory: async () => {
      const inv = readInventory(sim.port, { pciIds, kernelRelease: sim.kernelRelease });
      await enrichWithHostTools(inv, tools);
      return inv;
    },
  };
  return ctx;
}

/** A directory laid out like a kubelet ConfigMap volume: config.yaml -> ..data/config.yaml, ..data -> ..<version>. */
export class ConfigMount {
  readonly dir: string;
  readonly file: string;
  private n = 0;
  constructor(dir: string, text: string) {
    this.dir = dir;
    this.file = join(dir, 'config.yaml');
    mkdirSync(dir, { recursive: true });
    this.swap(text);
    symlinkSync('..data/config.yaml', this.file);
  }
  /** Replace the content the way the kubelet does: new version dir, new ..data symlink renamed over the old one. */
  swap(text: string): void {
    const ver = `..v${++this.n}`;
    mkdirSync(join(this.dir, ver));
    writeFileSync(join(this.dir, ver, 'config.yaml'), text);
    const tmp = join(this.dir, '..data_tmp');
    rmSync(tmp, { force: true });
    symlinkSync(ver, tmp);
    renameSync(tmp, join(this.dir, '..data'));
    if (this.n > 1) rmSync(join(this.dir, `..v${this.n - 1}`), { recursive: true, force: true });
  }
}

export function adminClient(kubeconfigPath: string): KubeClient {
  return new KubeClient(loadKubeconfigFile(kubeconfigPath), { userAgent: 'vmgpu-test-admin' });
}

export interface NodeObj {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  status?: Record<string, unknown>;
}

export async function getNode(c: KubeClient, name: string): Promise<NodeObj> {
  return c.request<NodeObj>('GET', `/api/v1/nodes/${name}`);
}

export async function setLabels(c: KubeClient, name: string, labels: Record<string, string | null>): Promise<void> {
  await c.request('PATCH', `/api/v1/nodes/${name}`, { body: { metadata: { labels } }, contentType: 'application/merge-patch+json' });
}

/** Poll until `fn` returns a truthy value; fail with `what` and the last value seen. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)?.slice(0, 2000)}`);
    await sleep(everyMs);
  }
}

export interface EventObj {
  reason: string;
  message: string;
  type: string;
  involvedObject: { kind: string; name: string };
}

export async function nodeEvents(c: KubeClient, node: string): Promise<EventObj[]> {
  const r = await c.request<{ items: EventObj[] }>('GET', '/api/v1/namespaces/default/events', { query: { fieldSelector: `involvedObject.name=${node}` } });
  return r.items;
}

/** Profiles by VF across the simulated node: profile -> count. */
export async function vfProfiles(ctx: Context): Promise<Record<string, number>> {
  const inv = await ctx.inventory();
  const out: Record<string, number> = {};
  for (const g of inv.gpus) for (const v of g.vfs) if (v.currentProfile) out[v.currentProfile] = (out[v.currentProfile] ?? 0) + 1;
  return out;
}

export const TWO_CONFIGS = `version: v1
vgpu-configs:
  small:
    - devices: all
      vgpu-devices:
        L40S-1Q: 32
  large:
    - devices: all
      vgpu-devices:
        L40S-2Q: 24
`;
