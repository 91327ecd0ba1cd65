// Shared pieces of the agent's end-to-end tests and benchmark: a kubelet-style ConfigMap mount (..data symlink swap),
// an admin client on @kubernetes/client-node, and Node/Event helpers (polling: test/support/wait.ts).
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Machine } from '../../src/machine/machine.js';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions, type CoreV1Event, type KubeConfig, type V1Node } from '@kubernetes/client-node';

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

/** The test's cluster-admin view: the typed APIs it uses to drive and inspect the agent. */
export interface Admin {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  rbac: RbacAuthorizationV1Api;
}

export function adminClient(kc: KubeConfig): Admin {
  return { core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi), coordination: kc.makeApiClient(CoordinationV1Api), rbac: kc.makeApiClient(RbacAuthorizationV1Api) };
}

export async function getNode(c: Admin, name: string): Promise<V1Node> {
  return c.core.readNode({ name });
}

/** Merge-patch labels (null removes one), as `kubectl label` does. */
export async function setLabels(c: Admin, name: string, labels: Record<string, string | null>): Promise<void> {
  await c.core.patchNode({ name, body: { metadata: { labels } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

export async function nodeEvents(c: Admin, node: string): Promise<CoreV1Event[]> {
  return (await c.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${node}` })).items;
}

/** Profiles by VF across the simulated node: profile -> count. */
export async function vfProfiles(machine: Machine): Promise<Record<string, number>> {
  const inv = await machine.inventory();
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

/** Two layouts of an L40S: four 12 GB or two 24 GB vGPUs (the real-node tests). */
export const L40S_12Q_24Q = `version: v1
vgpu-configs:
  l40s-12q:
    - devices: all
      vgpu-devices:
        L40S-12Q: 4
  l40s-24q:
    - devices: all
      vgpu-devices:
        L40S-24Q: 2
`;
