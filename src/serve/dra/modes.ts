/**
 * One GPU, one mode: which GPUs the agent's desired state gives the DRA
 * driver (entries with `mode: dra`, or every GPU with the node label
 * vmgpu.io/mode=dra), and the inventory the static device plugins may serve
 * (neither DRA GPUs nor devices the driver prepared, even on a GPU that has
 * just been switched back to static mode).
 */
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import type { InUse } from '../../plan/types.js';
import type { DraPolicySpec } from '../../spec/dra-policy.js';
import type { NamedConfig } from '../../spec/config.js';
import { assignGpus, gpuIdentity } from '../../spec/match.js';
import { resolveDesired } from '../agent/desired.js';
import type { Desired } from '../agent/state.js';
import type { PermittedHostDevices } from '../kubevirt/permitted.js';

/** The GPUs a resolved config gives the DRA driver. */
export function draGpusOf(config: NamedConfig, inv: Inventory): string[] {
  return assignGpus(config.entries, inv.gpus.map(gpuIdentity))
    .assigned.filter((a) => a.entry.mode === 'dra')
    .map((a) => a.gpu.address);
}

/** The inventory the device plugins serve: without DRA GPUs and without anything the DRA driver prepared. */
export function exceptDra(inv: Inventory, draGpus: ReadonlySet<string>, held: InUse): Inventory {
  const gpus = inv.gpus
    .filter((g) => !draGpus.has(g.pci.address) && !held.has(g.pci.address))
    .map((g) => ({
      ...g,
      vfs: g.vfs.filter((v) => !held.has(v.address)),
      mdevParents: g.mdevParents.map((p) => ({ ...p, instances: p.instances.filter((i) => !held.has(i.uuid)) })),
    }));
  return { ...inv, gpus };
}

/** What the agent needs of the DRA driver. */
export interface DraHooks {
  start(): Promise<void>;
  stop(): Promise<void>;
  configure(gpus: readonly string[], policy: DraPolicySpec | null | undefined): Promise<void>;
  /** Devices prepared for claims, with the claim. */
  held(): InUse;
  /** GPUs in DRA mode now. */
  gpus(): ReadonlySet<string>;
  /** KubeVirt's permittedHostDevices entries for the driver's extended resources. */
  permitted(): PermittedHostDevices;
}

/** Tell the driver which GPUs a desired state gives it (before the static plan, so it never prepares on a GPU leaving DRA mode). */
export async function configureDra(dra: DraHooks, machine: Machine, d: Desired): Promise<void> {
  let resolved: ReturnType<typeof resolveDesired>;
  try {
    resolved = resolveDesired(d);
  } catch {
    return; // the reconcile reports the bad config; the driver keeps its current modes
  }
  const inv = await machine.inventory({ mixedSizeMode: false });
  await dra.configure(draGpusOf(resolved.config, inv), resolved.file.dra);
}
