/**
 * The GPU Operator's `container` workload on a node vmgpu laid out for VMs.
 *
 * The chart runs the agent on nodes labelled nvidia.com/gpu.workload.config
 * vm-vgpu or vm-passthrough, and on a `container` node only while it carries
 * the mark `vmgpu.io/managed=true`. The agent puts the mark on its Node before
 * it first changes the node for VMs (a failed patch changes nothing), and
 * takes it off once a `container` node's GPUs are all back on their host
 * driver with no vGPU left (state success: free devices go at once, held ones
 * wait for their VM, undetermined ones fail). Until then a relabelled node
 * keeps its agent; after that the DaemonSet leaves the node, and an agent
 * kept there anyway (a custom affinity) serves nothing and changes nothing.
 */
import type { V1Node } from '@kubernetes/client-node';
import type { Inventory } from '../../inventory/types.js';
import { describeApiError, type Kube } from '../kube/kube.js';
import type { Logger } from '../kube/logger.js';
import { patchNodeMetadata } from '../kube/node-api.js';
import type { Desired, WorkloadMode } from './state.js';
import type { NodeEvent } from './status.js';

export const LABEL_MANAGED = 'vmgpu.io/managed';

export interface ManagedMarkOptions {
  /** Null: no API server, no mark. */
  kube: Kube | null;
  nodeName: string;
  /** Our Node as last seen (the informer's copy); a patch is reflected into it. */
  node(): V1Node | null;
  log: Logger;
  event(e: NodeEvent): void;
}

export class ManagedMark {
  constructor(private readonly o: ManagedMarkOptions) {}

  /** Whether our Node carried the mark when last seen. */
  present(): boolean {
    return this.o.node()?.metadata?.labels?.[LABEL_MANAGED] === 'true';
  }

  /** Before `d` changes the node: the mark for a VM workload, or why it cannot be set (then nothing may change). */
  async before(d: Desired): Promise<string | null> {
    if (d.workload === 'container') return null;
    try {
      await this.set(true);
      return null;
    } catch (err) {
      return `cannot label the node ${LABEL_MANAGED}=true, which keeps the agent on it should it be moved to the container workload: ${describeApiError(err)}; nothing was changed, retrying`;
    }
  }

  /** A `container` node whose GPUs are all back on the host driver: take the mark off, so the DaemonSet leaves it. False when the patch failed (retry). */
  async release(): Promise<boolean> {
    try {
      if (!(await this.set(false))) return true;
      this.o.log.info(`every GPU is back on its host driver; removed ${LABEL_MANAGED}, so the agent leaves this container node`, {});
      this.o.event({ type: 'Normal', reason: 'GpusReturnedToHost', message: `every GPU is back on its host driver for the container workload; vmgpu removed ${LABEL_MANAGED} and its agent leaves the node` });
      return true;
    } catch (err) {
      this.o.log.warn(`removing ${LABEL_MANAGED} failed; retrying`, { error: describeApiError(err) });
      return false;
    }
  }

  /** Whether the node is out of the agent's hands: `container`, and the mark gone. */
  released(workload: WorkloadMode): boolean {
    return workload === 'container' && !this.present();
  }

  /** Put the mark on (true) or take it off (false) when our Node differs; true when it patched. Throws the API server's error. */
  async set(on: boolean): Promise<boolean> {
    const node = this.o.node();
    if (!this.o.kube || !node || this.present() === on) return false;
    await patchNodeMetadata(this.o.kube, this.o.nodeName, { [LABEL_MANAGED]: on ? 'true' : null }, {});
    // Reflect into our copy so the next pass does not patch again (the informer brings the same soon).
    const labels = { ...node.metadata?.labels };
    if (on) labels[LABEL_MANAGED] = 'true';
    else delete labels[LABEL_MANAGED];
    (node.metadata ??= {}).labels = labels;
    return true;
  }
}

/**
 * The inventory the device plugins may serve under `workload`: nothing on a
 * `container` node (its GPUs belong to containers; a vGPU still held by a VM
 * keeps running, but no new one is offered).
 */
export function servedInventory(inv: Inventory, workload: WorkloadMode | null): Inventory {
  return workload === 'container' ? { ...inv, gpus: [] } : inv;
}
