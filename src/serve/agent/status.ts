/**
 * From how a reconcile ended to what the agent reports: the status it keeps
 * on its Node (`vmgpu.io/status`, the state label), the Event it posts, its
 * log line and its metrics; and the same for each validation. The rules are
 * pure functions; StatusReporter keeps the current status and applies them.
 */
import type { EventEmitter } from 'node:events';
import type { Inventory } from '../../inventory/types.js';
import type { Blocked, InUse, Plan, Undetermined } from '../../plan/types.js';
import type { Logger } from '../kube/logger.js';
import type { EventType } from '../kube/node-api.js';
import type { AgentMetrics } from './metrics.js';
import type { ReconcileOutcome } from './reconcile.js';
import type { ValidationReport } from './validator.js';

export type ConfigState = 'pending' | 'success' | 'failed';

export interface AgentStatus {
  config: string | null;
  state: ConfigState;
  reason: string;
  gpus: { gpu: string; model: string; mode: string; want: Record<string, number>; kept: number }[];
  /** Changes that wait, on GPU `gpu`; `waitsFor`: the devices in use whose release unblocks each. */
  blocked: { gpu: string; device: string; change: string; reason: string; waitsFor: string[] }[];
  /** Devices vmgpu cannot tell about (a vGPU type it cannot name, a blind VFIO scan): their GPUs are left as they are. */
  undetermined: { device: string; reason: string; fix: string }[];
  errors: string[];
  appliedAt: string | null;
  /** The desired-state key (workload, config name, file content) this status answers. */
  observedGeneration: string;
}

/** Undetermined devices listed in the status; the reason counts them all. */
const MAX_UNDETERMINED_LISTED = 16;

/** A reconcile's ending in the status's terms. */
export interface Verdict {
  state: ConfigState;
  reason: string;
  /** The config name, or the workload mode when it has none; null when none could be chosen. */
  config: string | null;
  plan: Plan | null;
  blocked: Blocked[];
  errors: string[];
  writes: number;
  /** The metrics' result label: the state, or `noop` when nothing needed doing. */
  result: ConfigState | 'noop';
  /** The error counter's kind, for a failure. */
  errorKind: string | null;
}

export function verdictOf(outcome: ReconcileOutcome, config: string): Verdict {
  const v = outcomeVerdict(outcome, config);
  const unknown = outcome.kind === 'failed' ? [] : (outcome.planned?.plan.undetermined ?? []);
  if (unknown.length === 0) return v;
  // Not success: part of the node is left alone because vmgpu cannot tell what is on it.
  const reason = undeterminedReason(unknown);
  return { ...v, state: 'failed', reason, errors: [reason], result: 'failed', errorKind: 'undetermined' };
}

function outcomeVerdict(outcome: ReconcileOutcome, config: string): Verdict {
  const base = { config, plan: outcome.planned?.plan ?? null, blocked: [], errors: [], errorKind: null };
  switch (outcome.kind) {
    case 'failed':
      return { ...base, state: 'failed', reason: outcome.error, errors: [outcome.error], writes: outcome.writes, result: 'failed', errorKind: outcome.stage };
    case 'noop':
      return { ...base, state: 'success', reason: 'the node already matches', writes: 0, result: 'noop' };
    case 'busy':
      return { ...base, state: 'pending', reason: `waiting for the node lock, retrying: ${outcome.reason}`, writes: 0, result: 'pending' };
    case 'applied':
      if (outcome.blocked.length === 0) return { ...base, state: 'success', reason: `applied (${outcome.writes} write(s))`, writes: outcome.writes, result: 'success' };
      return { ...base, state: 'pending', reason: pendingReason(outcome.blocked), blocked: outcome.blocked, writes: outcome.writes, result: 'pending' };
  }
}

/** No desired state could be chosen (a bad label, no config file): a config failure. */
export function unusableDesired(reason: string): Verdict {
  return { state: 'failed', reason, config: null, plan: null, blocked: [], errors: [reason], writes: 0, result: 'failed', errorKind: 'config' };
}

function undeterminedReason(unknown: Undetermined[]): string {
  const gpus = [...new Set(unknown.map((u) => u.gpu))];
  const [first] = unknown;
  const more = unknown.length > 1 ? ` (and ${unknown.length - 1} more)` : '';
  const which = gpus.length === 1 ? `GPU ${gpus[0]}, so it leaves that GPU as it is` : `GPUs ${gpus.join(', ')}, so it leaves those GPUs as they are`;
  return `vmgpu cannot tell what is on ${unknown.length} device(s) of ${which}: ${first!.reason}${more}. Fix: ${first!.fix}`;
}

function pendingReason(blocked: Blocked[]): string {
  const first = blocked.slice(0, 3).map((b) => `${b.device} (${b.reason})`);
  return `${blocked.length} change(s) wait for devices in use: ${first.join('; ')}${blocked.length > 3 ? '; ...' : ''}`;
}

/**
 * The status for `key`. `recordedAt` is when the recorded config was applied;
 * a failure keeps the time the previous status showed.
 */
export function statusOf(v: Verdict, key: string, prev: AgentStatus | null, recordedAt: string | null): AgentStatus {
  return {
    config: v.config,
    state: v.state,
    reason: v.reason,
    gpus: (v.plan?.gpus ?? []).map((g) => ({ gpu: g.gpu, model: g.model, mode: g.mode, want: g.want, kept: g.kept })),
    blocked: v.blocked.map((b) => ({ gpu: b.gpu, device: b.device, change: b.change, reason: b.reason, waitsFor: b.waitsFor })),
    // Bounded: the annotation must stay small on a node with hundreds of VFs; the reason gives the count.
    undetermined: (v.plan?.undetermined ?? []).slice(0, MAX_UNDETERMINED_LISTED).map((u) => ({ device: u.device, reason: u.reason, fix: u.fix })),
    errors: v.errors,
    appliedAt: v.state === 'failed' ? (prev?.appliedAt ?? recordedAt) : recordedAt,
    observedGeneration: key,
  };
}

/**
 * While pending: whether a device some change waits for is no longer held,
 * so re-planning can get further. A change blocked by capacity waits for the
 * held devices of its GPU, not for the device it would change.
 */
export function releasedForPending(s: AgentStatus, held: ReadonlySet<string>): boolean {
  return s.blocked.some((b) => b.waitsFor.some((d) => !held.has(d.toLowerCase())));
}

export interface NodeEvent {
  type: EventType;
  reason: string;
  message: string;
}

/**
 * The Event a new status deserves: each failure, each new set of pending
 * changes, and each apply or change of outcome (a restart that finds the node
 * matching posts nothing). `pendingSeen` identifies the pending set last
 * announced; the returned `pendingSeen` replaces it.
 */
export function eventFor(s: AgentStatus, prev: AgentStatus | null, writes: number, pendingSeen: string): { event: NodeEvent | null; pendingSeen: string } {
  if (s.state === 'failed') return { event: { type: 'Warning', reason: 'VgpuConfigFailed', message: `config ${s.config ?? '?'}: ${s.reason}` }, pendingSeen: '' };
  if (s.state === 'pending') {
    const sig = `${s.observedGeneration}|${s.blocked.map((b) => b.device).join(',')}`;
    const event: NodeEvent | null = sig === pendingSeen ? null : { type: 'Normal', reason: 'VgpuConfigPending', message: `config ${s.config}: ${s.reason}` };
    return { event, pendingSeen: sig };
  }
  const changed = writes > 0 || (prev !== null && (prev.state !== 'success' || prev.observedGeneration !== s.observedGeneration));
  return { event: changed ? { type: 'Normal', reason: 'VgpuConfigApplied', message: `config ${s.config} applied: ${s.reason}` } : null, pendingSeen: '' };
}

/** Count one reconcile: result, duration, blocked changes, the state gauge, errors. */
function recordReconcile(metrics: AgentMetrics, v: Verdict, seconds: number): void {
  metrics.reconciles.inc({ result: v.result });
  metrics.reconcileDuration.observe({ result: v.result }, seconds);
  metrics.blocked.set(v.blocked.length);
  for (const st of ['pending', 'success', 'failed']) metrics.state.set({ state: st }, st === v.state ? 1 : 0);
  if (v.errorKind) metrics.errors.inc({ kind: v.errorKind });
}

/** The vGPUs on the node by profile, free or allocated (held by a pod). */
function setVgpuGauge(metrics: AgentMetrics, inv: Inventory, inUse: InUse): void {
  const counts = new Map<string, number>();
  const add = (profile: string, id: string) => {
    const k = `${profile}\0${inUse.has(id.toLowerCase()) ? 'allocated' : 'free'}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  };
  for (const g of inv.gpus) {
    for (const v of g.vfs) if (v.currentTypeId) add(v.currentProfile ?? `type-${v.currentTypeId}`, v.address);
    for (const p of g.mdevParents) for (const i of p.instances) add(i.typeName ?? i.typeDir, i.uuid);
  }
  metrics.vgpus.reset();
  for (const [k, n] of counts) {
    const [profile, state] = k.split('\0') as [string, string];
    metrics.vgpus.set({ profile, state }, n);
  }
}

/** The validator's per-check gauge, and an error when it failed. */
function recordValidation(metrics: AgentMetrics, report: ValidationReport, changed: boolean): void {
  for (const c of report.checks) if (c.status !== 'skipped') metrics.validation.set({ check: c.check }, c.status === 'passed' ? 1 : 0);
  if (changed && !report.passed) metrics.errors.inc({ kind: 'validate' });
}

export interface ReporterOptions {
  metrics: AgentMetrics;
  log: Logger;
  /** Receives `reconciled` {result, state, key, writes, ms, trigger} and `validated` ValidationReport. */
  events: EventEmitter;
  postEvent(e: NodeEvent): void;
  /** Bring the Node up to date with current() and lastValidation(). */
  publish(): void;
}

/** The agent's status and last validation, and the reporting of each change. */
export class StatusReporter {
  private status: AgentStatus | null = null;
  private validation: ValidationReport | null = null;
  private pendingSeen = '';

  constructor(private readonly opts: ReporterOptions) {}

  current(): AgentStatus | null {
    return this.status;
  }

  lastValidation(): ValidationReport | null {
    return this.validation;
  }

  /**
   * A reconcile of desired state `key`, triggered at `since`, ended with `v`.
   * `recordedAt`: when the recorded config was applied. `vgpus`: the node now
   * and what pods hold, for the vGPU gauge.
   */
  reconciled(v: Verdict, key: string, pass: { trigger: string; since: number }, recordedAt: string | null, vgpus: { inventory: Inventory; inUse: InUse } | null): void {
    const prev = this.status;
    this.status = statusOf(v, key, prev, recordedAt);
    const ms = performance.now() - pass.since;
    recordReconcile(this.opts.metrics, v, ms / 1000);
    if (vgpus) setVgpuGauge(this.opts.metrics, vgpus.inventory, vgpus.inUse);
    this.opts.log[v.state === 'failed' ? 'error' : 'info']('reconciled', { trigger: pass.trigger, state: v.state, config: v.config, writes: v.writes, ms: Math.round(ms), reason: v.reason });
    const { event, pendingSeen } = eventFor(this.status, prev, v.writes, this.pendingSeen);
    this.pendingSeen = pendingSeen;
    if (event) this.opts.postEvent(event);
    this.opts.events.emit('reconciled', { result: v.result, state: v.state, key, writes: v.writes, ms, trigger: pass.trigger });
    this.opts.publish();
  }

  /** A validation ran: the gauges always; the log line and the Node only when a check changed. Returns the current report. */
  validated(report: ValidationReport): ValidationReport {
    const changed = !this.validation || JSON.stringify(this.validation.checks) !== JSON.stringify(report.checks);
    recordValidation(this.opts.metrics, report, changed);
    if (changed) {
      this.validation = report;
      this.opts.log[report.passed ? 'info' : 'warn']('validation', { passed: report.passed, failed: report.checks.filter((c) => c.status === 'failed').map((c) => c.check) });
      this.opts.publish();
    }
    this.opts.events.emit('validated', this.validation);
    return this.validation ?? report;
  }
}
