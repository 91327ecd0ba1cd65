/**
 * Writes to the API server on behalf of the agent: a JSON merge patch of only
 * our label/annotation keys on our own Node (no read-modify-write, so it
 * cannot clobber other writers and needs no resourceVersion), and core/v1
 * Events about the Node.
 */
import { PatchStrategy, setHeaderOptions, type CoreV1Event } from '@kubernetes/client-node';
import type { Kube } from './kube.js';

export interface NodeRef {
  name: string;
  uid?: string;
}

/** Patch labels/annotations of the Node (null value = remove the key). */
export async function patchNodeMetadata(kube: Kube, node: string, labels: Record<string, string | null>, annotations: Record<string, string | null>): Promise<void> {
  const metadata: Record<string, unknown> = {};
  if (Object.keys(labels).length) metadata.labels = labels;
  if (Object.keys(annotations).length) metadata.annotations = annotations;
  if (!Object.keys(metadata).length) return;
  await kube.core.patchNode({ name: node, body: { metadata } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

export type EventType = 'Normal' | 'Warning';

/** Create an Event about the Node (namespace `default`, as the kubelet does for Node events). */
export async function postNodeEvent(kube: Kube, node: NodeRef, type: EventType, reason: string, message: string, namespace = 'default', component = 'vmgpu-agent'): Promise<void> {
  const now = new Date();
  const body: CoreV1Event = {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${node.name}.vmgpu.`, namespace },
    involvedObject: { apiVersion: 'v1', kind: 'Node', name: node.name, ...(node.uid ? { uid: node.uid } : {}) },
    reason,
    message: message.length > 1000 ? `${message.slice(0, 997)}...` : message,
    type,
    source: { component, host: node.name },
    reportingComponent: 'vmgpu.io/agent',
    reportingInstance: node.name,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
  await kube.core.createNamespacedEvent({ namespace, body });
}
