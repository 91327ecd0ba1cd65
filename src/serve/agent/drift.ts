/**
 * Drift: the node no longer matches what the agent last reported, without
 * any input having changed. A driver reload or an `sriov_numvfs` reset makes
 * VFs and vGPUs vanish; a reboot is handled at boot. Found by a periodic local
 * assert: read the node, plan the config the status answers, and compare
 * (an 8-GPU inventory reads in about 18 ms; no API request). The agent then
 * repairs through a normal reconcile (the kubelet's answer, the node lock,
 * changes only to free devices), posts an Event and counts it.
 *
 * The same look finds vGPUs that have become nameable (a free VF, nvidia-smi
 * reachable again): the agent then plans again.
 */
import type { Machine } from '../../machine/machine.js';
import { planOn } from '../../machine/plan-on.js';
import { describeAction, type InUse, type Plan } from '../../plan/types.js';
import { resolveDesired } from './desired.js';
import type { Desired } from './state.js';
import type { AgentStatus } from './status.js';

export type DriftFinding =
  /** Something the status said was done is undone (or something new waits): repair. */
  | { kind: 'drift'; summary: string }
  /** Fewer vGPUs are unknown than the status says: plan again. */
  | { kind: 'names'; summary: string };

/**
 * Plan `desired` on the node now, with what pods hold (`podsHold`, from the
 * kubelet: a change waiting for a pod is not drift), and compare with
 * `status`; null when the node is as reported.
 */
export async function lookForDrift(machine: Machine, desired: Desired, status: AgentStatus, nodeId: string, podsHold: InUse): Promise<DriftFinding | null> {
  const { file, config } = resolveDesired(desired);
  const { plan } = await planOn(machine, { file, name: config.name, nodeId, extraInUse: podsHold });
  return driftOf(status, plan);
}

/** What a plan made now says about the node the status describes. */
export function driftOf(status: AgentStatus, plan: Plan): DriftFinding | null {
  // A failure other than undetermined vGPUs is retried on its own backoff.
  if (status.state === 'failed' && status.undetermined.length === 0) return null;
  const then = new Set(status.undetermined.map((u) => u.device));
  const now = plan.undetermined.map((u) => u.device);
  if (now.length < then.size && now.every((d) => then.has(d))) return { kind: 'names', summary: `${then.size - now.length} vGPU(s) can be named now` };
  if (now.some((d) => !then.has(d))) return { kind: 'drift', summary: `vmgpu can no longer tell what is on ${now.filter((d) => !then.has(d)).join(', ')}` };
  // A waiting GPU whose holders left can go on: the pending re-check's business, not drift.
  const waiting = new Set(status.state === 'pending' ? status.blocked.map((b) => b.gpu) : []);
  const todo = plan.actions.filter((a) => !waiting.has(a.gpu)).map(describeAction);
  if (todo.length > 0) return { kind: 'drift', summary: `${todo.length} change(s) needed again: ${todo.slice(0, 3).join('; ')}${todo.length > 3 ? '; ...' : ''}` };
  if (status.state === 'success' && plan.blocked.length > 0) return { kind: 'drift', summary: `${plan.blocked.length} change(s) needed again, waiting for devices in use: ${plan.blocked[0]!.change}` };
  return null;
}
