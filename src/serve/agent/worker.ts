/**
 * The agent's reconcile worker: one pass at a time; a trigger during a pass
 * asks for one more pass, not one per trigger; a failure retries with
 * exponential backoff and jitter, a success resets the backoff.
 */
import { backoffDelay } from '../kube/backoff.js';
import type { Logger } from '../kube/logger.js';
import type { AgentMetrics } from './metrics.js';

export interface Pass {
  /** Set by a retry or a release of devices: run even when the desired state was handled already. */
  force: boolean;
  /** What asked for the pass (`node`, `config`, `retry`, `released`). */
  trigger: string;
  /** When the trigger came (performance.now()), for the reconcile duration. */
  since: number;
}

export interface WorkerOptions {
  retryInitialMs: number;
  retryMaxMs: number;
  log: Logger;
  metrics: AgentMetrics;
}

export class Worker {
  private running: Promise<void> | null = null;
  private dirty = false;
  private force = false;
  private trigger = 'start';
  private triggerAt = 0;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly pass: (p: Pass) => Promise<void>,
    private readonly opts: WorkerOptions,
  ) {}

  /** Ask for a pass now (or after the running one). */
  kick(trigger: string, force: boolean): void {
    if (this.stopped) return;
    this.dirty = true;
    this.force ||= force;
    if (!this.running) {
      this.trigger = trigger;
      this.triggerAt = performance.now();
    }
    this.running ??= this.work().finally(() => {
      this.running = null;
      if (this.dirty && !this.stopped) this.kick(this.trigger, false);
    });
  }

  private async work(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      const pass: Pass = { force: this.force, trigger: this.trigger, since: this.triggerAt || performance.now() };
      this.force = false;
      this.triggerAt = 0;
      try {
        await this.pass(pass);
      } catch (err) {
        this.opts.metrics.errors.inc({ kind: 'internal' });
        this.opts.log.error('reconcile crashed; retrying', { error: (err instanceof Error ? err.stack : undefined) ?? String(err) });
        this.retry();
      }
    }
  }

  /** A pass failed: run a forced pass after the backoff delay. */
  retry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.failures++;
    const ms = backoffDelay(this.failures, this.opts.retryInitialMs, this.opts.retryMaxMs);
    this.opts.log.info('retrying after a failure', { inMs: ms, attempt: this.failures });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick('retry', true);
    }, ms);
  }

  /** A new desired state or a success: the next failure starts the backoff over. */
  resetBackoff(): void {
    this.failures = 0;
  }

  /** A new input supersedes the scheduled retry. */
  cancelRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Whether a pass runs now. */
  busy(): boolean {
    return this.running !== null;
  }

  /** Resolves when no pass runs. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** No pass starts after this; `idle()` waits for the one running. */
  stop(): void {
    this.stopped = true;
    this.cancelRetry();
  }
}
