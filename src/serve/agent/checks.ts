/**
 * The agent's local checks between passes, none of them asking the API
 * server: while a change is pending, whether the devices it waits for were
 * released (the kubelet's pod-resources, open VFIO files, the DRA driver's
 * claims); and periodically, whether the node still matches its status
 * (drift.ts). Each ends, when there is something to do, in a forced pass.
 */
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import type { InUse } from '../../plan/types.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../kube/logger.js';
import type { DesiredResult } from './desired.js';
import { lookForDrift, type DriftFinding } from './drift.js';
import { keyOf } from './inputs.js';
import type { AgentMetrics } from './metrics.js';
import type { WorkloadMode } from './state.js';
import { releasedForPending, type AgentStatus, type NodeEvent } from './status.js';

export interface LocalChecksOptions {
  machine: Machine;
  nodeName: string;
  /** How often to re-check while a change is pending. */
  pendingRecheckMs: number;
  log: Logger;
  metrics: AgentMetrics;
  status(): AgentStatus | null;
  desired(): DesiredResult | null;
  /** The inventory of the last pass (null before the first). */
  inventory(): Inventory | null;
  /** What pods hold; throws when the kubelet cannot answer. */
  podsHold(): Promise<InUse>;
  /** What the DRA driver prepared (empty without it). */
  draHeld(): InUse;
  /** Whether a check may run now: the agent has booted, is not stopping, and no pass is running. */
  quiet(): boolean;
  /** Whether a node asked for `workload` is out of the agent's hands (a released `container` node: managed.ts). */
  leftAlone(workload: WorkloadMode): boolean;
  /** Ask for a forced pass. */
  kick(trigger: string): void;
  event(e: NodeEvent): void;
}

export class LocalChecks {
  private pendingTimer: NodeJS.Timeout | null = null;
  private driftTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: LocalChecksOptions) {}

  /** Look for drift every `driftMs` (0: never). */
  start(driftMs: number): void {
    if (driftMs > 0) this.driftTimer = setInterval(() => void this.checkDrift(), driftMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    if (this.driftTimer) clearInterval(this.driftTimer);
  }

  /** Re-check the pending change after the interval (once; each look schedules the next while still pending). */
  schedulePending(): void {
    if (this.pendingTimer || this.stopped) return;
    this.pendingTimer = setTimeout(() => {
      this.pendingTimer = null;
      void this.recheckPending();
    }, this.o.pendingRecheckMs);
  }

  /** While pending: ask the kubelet (locally) whether the blocking devices were released. */
  private async recheckPending(): Promise<void> {
    if (this.stopped || this.o.status()?.state !== 'pending') return;
    try {
      const pods = await this.o.podsHold();
      const inv = this.o.inventory();
      const machineInUse = inv ? this.o.machine.inUse(inv) : new Map<string, string>();
      const held = new Set([...pods.keys(), ...machineInUse.keys(), ...this.o.draHeld().keys()]);
      const status = this.o.status();
      if (status && releasedForPending(status, held)) {
        this.o.kick('released');
        return;
      }
    } catch (err) {
      this.o.log.warn('pod-resources check failed while a change is pending', { error: messageOf(err) });
    }
    this.schedulePending();
  }

  /** The periodic local assert (drift.ts): repair what a driver reload undid; look again when names appear. */
  async checkDrift(): Promise<DriftFinding | null> {
    const status = this.o.status();
    const want = this.o.desired();
    if (this.stopped || !this.o.quiet() || !status || !want?.ok || keyOf(want) !== status.observedGeneration || this.o.leftAlone(want.desired.workload)) return null;
    let found: DriftFinding | null;
    try {
      found = await lookForDrift(this.o.machine, want.desired, status, this.o.nodeName, await this.o.podsHold());
    } catch (err) {
      // Without the kubelet's answer a waiting change would look like drift: skip this look.
      this.o.log.warn('the periodic check of the node could not run', { error: messageOf(err) });
      return null;
    }
    // A pass that ran meanwhile may have changed the node: what was seen is stale, not drift.
    if (!found || this.stopped || !this.o.quiet() || this.o.status() !== status) return null;
    if (found.kind === 'drift') {
      this.o.metrics.drift.inc();
      this.o.log.warn('the node no longer matches its config; repairing what is free', { config: status.config, found: found.summary });
      this.o.event({ type: 'Warning', reason: 'VgpuDriftDetected', message: `config ${status.config ?? '?'}: ${found.summary}; repairing the devices that are free` });
    }
    this.o.kick(found.kind);
    return found;
  }
}
