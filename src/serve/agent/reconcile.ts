/**
 * One reconcile: from a desired state to the node's layout through the config
 * engine (resolve the config, ask the kubelet what pods hold, plan, apply,
 * re-read), with every way it can end as data. Nothing here touches the API
 * server, the status or the device plugins: the agent does that with the
 * outcome. Only an unexpected exception (a bug) is thrown.
 */
import { applyPlan, type ApplyResult } from '../../apply/apply.js';
import type { Inventory } from '../../inventory/types.js';
import { NodeLockBusyError, type NodeLock } from '../../machine/lock.js';
import type { Machine } from '../../machine/machine.js';
import { planOn } from '../../machine/plan-on.js';
import type { Action, Blocked, InUse, Plan } from '../../plan/types.js';
import { isConfigError } from '../../spec/config.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../kube/logger.js';
import { resolveDesired, resourceNamesOf, type ResourceNames } from './desired.js';
import type { AgentMetrics } from './metrics.js';
import { desiredKey, type AppliedState, type Desired, type StateStore } from './state.js';

/** Where a reconcile stopped: the config, the node lock, the kubelet's in-use answer, the planner, or a write. */
export type FailureStage = 'config' | 'lock' | 'pod-resources' | 'plan' | 'apply';

/** What a reconcile that got as far as a plan saw: the plan, the node afterwards, the config's resource names. */
export interface Planned {
  plan: Plan;
  /** The node after the reconcile (re-read when anything was written). */
  inventory: Inventory;
  resourceNames: ResourceNames;
}

export type ReconcileOutcome =
  /** Nothing or part was done; `planned` is null when no plan was made. */
  | { kind: 'failed'; stage: FailureStage; error: string; planned: Planned | null; writes: number }
  /** The node already matched; nothing was written. */
  | { kind: 'noop'; planned: Planned }
  /** The plan ran; `blocked` changes wait for devices in use. */
  | { kind: 'applied'; planned: Planned; writes: number; blocked: Blocked[] }
  /** Another writer (an admin's `vmgpu apply`) holds the node lock: nothing was read or written; try again soon. */
  | { kind: 'busy'; reason: string; planned: null };

export interface ReconcileEnv {
  machine: Machine;
  /** Node identity: part of every mdev UUID vmgpu creates. */
  nodeId: string;
  /** What pods hold, from the kubelet; throws when the kubelet cannot answer. */
  podsHolding(): Promise<InUse>;
  log: Logger;
}

export interface ReconcileRequest {
  desired: Desired;
  /**
   * `boot` runs before the API server and the kubelet may be up: without a
   * pod-resources answer it relies on open VFIO files only. `reconcile` never
   * guesses: without the kubelet's answer a change could take a device from a
   * running VM.
   */
  mode: 'boot' | 'reconcile';
  /** Stop at the plan when the node already matches (the desired state was applied before). */
  skipIfMatches?: boolean;
  /** How long to wait for another writer's node lock before giving up with `busy` (default 1 s). */
  lockWaitMs?: number;
}

/** The agent holds the node lock only for one plan and apply, so an admin's `vmgpu apply` waits seconds at most. */
const LOCK_WAIT_MS = 1000;

type Resolved = ReturnType<typeof resolveDesired>;

export async function reconcileDesired(env: ReconcileEnv, req: ReconcileRequest): Promise<ReconcileOutcome> {
  let resolved: Resolved;
  try {
    resolved = resolveDesired(req.desired);
  } catch (err) {
    if (isConfigError(err)) return failed('config', err.message);
    throw err;
  }
  let lock: NodeLock;
  try {
    lock = await env.machine.lock({ command: 'vmgpu agent', waitMs: req.lockWaitMs ?? LOCK_WAIT_MS });
  } catch (err) {
    if (err instanceof NodeLockBusyError) return { kind: 'busy', reason: err.message, planned: null };
    return failed('lock', `cannot take the node lock: ${messageOf(err)}`);
  }
  try {
    return await planAndApply(env, req, resolved);
  } finally {
    lock.release();
  }
}

/** Under the node lock: ask the kubelet what pods hold, plan, and apply. */
async function planAndApply(env: ReconcileEnv, req: ReconcileRequest, resolved: Resolved): Promise<ReconcileOutcome> {
  const pods = await holdings(env, req.mode);
  if ('error' in pods) return failed('pod-resources', pods.error);
  let planned: { inv: Inventory; plan: Plan };
  try {
    planned = await planOn(env.machine, { file: resolved.file, name: resolved.config.name, nodeId: env.nodeId, extraInUse: pods.inUse });
  } catch (err) {
    return failed('plan', messageOf(err));
  }
  const { inv } = planned;
  const plan = pods.unknown === null ? planned.plan : onlyAdditive(planned.plan, pods.unknown);
  const result: Planned = { plan, inventory: inv, resourceNames: resourceNamesOf(resolved.config, inv) };
  if (plan.errors.length) return failed('plan', plan.errors.map((e) => `${e.where}: ${e.message}`).join('; '), result);
  if (req.skipIfMatches && plan.actions.length === 0 && plan.blocked.length === 0) return { kind: 'noop', planned: result };
  return applyPlanned(env.machine, result);
}

/** What pods hold; `unknown` says why it is not known (boot only: a reconcile fails instead). */
async function holdings(env: ReconcileEnv, mode: ReconcileRequest['mode']): Promise<{ inUse: InUse; unknown: string | null } | { error: string }> {
  try {
    return { inUse: await env.podsHolding(), unknown: null };
  } catch (err) {
    if (mode === 'reconcile') return { error: messageOf(err) };
    env.log.warn('boot: pod-resources is not available; only changes that take no device from a pod are made until it is', { error: messageOf(err) });
    return { inUse: new Map(), unknown: messageOf(err) };
  }
}

/** Kinds of action that only add to a GPU: nothing a pod could have been given is changed or taken. */
const ADDITIVE = new Set<Action['kind']>(['enable-vfs', 'set-mixed-sizes', 'set-vf-type', 'create-mdev']);

/**
 * Without the kubelet's answer, a GPU changes only when every action on it
 * adds (VFs, vGPU types on empty VFs, new mdevs and their params): what a
 * reboot lost comes back; a clear, a removal or a rebind waits, blocked.
 */
function onlyAdditive(plan: Plan, why: string): Plan {
  const created = new Set(plan.actions.flatMap((a) => (a.kind === 'set-vf-type' ? [a.vf] : a.kind === 'create-mdev' ? [a.uuid] : [])));
  const adds = (a: Action): boolean => ADDITIVE.has(a.kind) || (a.kind === 'set-vf-params' && created.has(a.vf)) || (a.kind === 'set-mdev-params' && created.has(a.uuid));
  const waiting = new Set(plan.actions.filter((a) => !adds(a)).map((a) => a.gpu));
  if (waiting.size === 0) return plan;
  const blocked: Blocked[] = [...waiting].map((gpu) => ({
    gpu,
    device: gpu,
    change: `${plan.actions.filter((a) => a.gpu === gpu).length} change(s) on ${gpu}`,
    reason: `waits for the kubelet's answer on which devices pods hold: ${why}`,
    waitsFor: [],
  }));
  return { ...plan, actions: plan.actions.filter((a) => !waiting.has(a.gpu)), blocked: [...plan.blocked, ...blocked] };
}

async function applyPlanned(machine: Machine, planned: Planned): Promise<ReconcileOutcome> {
  let result: ApplyResult;
  try {
    result = await applyPlan(planned.plan, { port: machine.port, tools: machine.tools });
  } finally {
    machine.commit();
  }
  // For the device plugins: no need to ask nvidia-smi for mixed-size modes again.
  const changed = result.writes > 0 || result.steps.length > 0;
  const after: Planned = changed ? { ...planned, inventory: await machine.inventory({ mixedSizeMode: false }) } : planned;
  if (result.failure) return failed('apply', result.failure.message, after, result.writes);
  return { kind: 'applied', planned: after, writes: result.writes, blocked: result.blocked };
}

function failed(stage: FailureStage, error: string, planned: Planned | null = null, writes = 0): ReconcileOutcome {
  return { kind: 'failed', stage, error, planned, writes };
}

/** Writes made by the reconcile (a failed apply may have made some). */
export function writesOf(outcome: ReconcileOutcome): number {
  return outcome.kind === 'noop' || outcome.kind === 'busy' ? 0 : outcome.writes;
}

/**
 * Whether to record the desired state as applied (re-applied at boot):
 * after any write, or when a config new to the record now holds completely
 * (nothing blocked, nothing vmgpu cannot tell).
 */
export function worthRecording(outcome: ReconcileOutcome, recordedKey: string | null, key: string): boolean {
  if (outcome.kind !== 'applied') return false;
  const complete = outcome.blocked.length === 0 && outcome.planned.plan.undetermined.length === 0;
  return outcome.writes > 0 || (complete && recordedKey !== key);
}

/** The record of the last applied config in the state dir, kept after each reconcile. */
export class AppliedRecord {
  private state: AppliedState | null = null;

  constructor(
    readonly store: StateStore,
    private readonly log: Logger,
    private readonly metrics: AgentMetrics,
  ) {}

  current(): AppliedState | null {
    return this.state;
  }

  /** Read the record at boot; one that cannot be read is logged, counted and treated as none. */
  load(): AppliedState | null {
    try {
      this.state = this.store.load();
    } catch (err) {
      this.log.error(messageOf(err), {});
      this.metrics.errors.inc({ kind: 'state' });
    }
    return this.state;
  }

  /** After a reconcile of `d`: record it when worth it. */
  update(outcome: ReconcileOutcome, d: Desired): void {
    if (!worthRecording(outcome, this.state?.key ?? null, desiredKey(d))) return;
    try {
      this.state = this.store.save(d);
    } catch (err) {
      this.log.error('cannot persist the applied config; a reboot will wait for the API server', { error: messageOf(err) });
      this.metrics.errors.inc({ kind: 'state' });
    }
  }
}
