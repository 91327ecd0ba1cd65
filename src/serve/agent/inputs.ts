/**
 * What the agent is asked to do, and when that changes: its own Node (a
 * watch of that one Node, for the config and workload labels) and the config
 * (a mounted file, or a ConfigMap read through the API), resolved into a
 * desired state and its key.
 */
import type { EventEmitter } from 'node:events';
import type { V1Node } from '@kubernetes/client-node';
import { watchNode, type Informer } from '../kube/informer.js';
import type { Kube } from '../kube/kube.js';
import type { Logger } from '../kube/logger.js';
import { ConfigMapSource, FileConfigSource, type ConfigSnapshot, type ConfigSource } from './config-source.js';
import { desiredFromLabels, type DesiredResult } from './desired.js';
import type { AgentMetrics } from './metrics.js';
import { desiredKey } from './state.js';

export interface InputsOptions {
  nodeName: string;
  /** Null: no API server, so no Node and nothing desired beyond the boot re-apply. */
  kube: Kube | null;
  configFile?: string | null | undefined;
  configMap?: { namespace: string; name: string } | null | undefined;
  defaultConfig?: string | undefined;
  /** Backoff of the node watch (tests shorten it). */
  watchBackoffInitialMs?: number | undefined;
  watchBackoffMaxMs?: number | undefined;
  log: Logger;
  metrics: AgentMetrics;
  /** Receives `api-error` {error} for each failed watch. */
  events: EventEmitter;
}

export type InputSource = 'node' | 'config';

/** Equal keys mean the same thing is asked; an unusable ask is keyed by its reason. */
export function keyOf(d: DesiredResult | null): string | null {
  if (!d) return null;
  return d.ok ? desiredKey(d.desired) : `invalid:${d.reason}`;
}

export class AgentInputs {
  private ownNode: V1Node | null = null;
  private configSource: ConfigSource | null = null;
  private informer: Informer<V1Node> | null = null;

  constructor(private readonly opts: InputsOptions) {}

  /** Our Node as last seen (null before the first list, and without an API server). */
  node(): V1Node | null {
    return this.ownNode;
  }

  start(changed: (source: InputSource) => void): void {
    const { kube, configMap, configFile, log } = this.opts;
    this.configSource = configMap && kube ? new ConfigMapSource(kube, configMap, log) : configFile ? new FileConfigSource(configFile, log) : null;
    this.configSource?.start(() => changed('config'));
    if (!kube) return;
    this.informer = watchNode(kube, this.opts.nodeName, {
      onChange: (node) => {
        this.ownNode = node;
        changed('node');
      },
      onError: (err, attempt) => {
        this.opts.metrics.errors.inc({ kind: 'api' });
        this.opts.events.emit('api-error', { error: err.message });
        log.warn('the API server is not reachable; device plugins keep serving, retrying', { attempt, error: err.message });
      },
      backoffInitialMs: this.opts.watchBackoffInitialMs ?? 500,
      backoffMaxMs: this.opts.watchBackoffMaxMs ?? 30_000,
    });
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
    await this.configSource?.stop();
  }

  /** What the labels and the config ask for now; null until our Node is known. */
  desired(): DesiredResult | null {
    if (!this.ownNode) return null;
    const cfg = this.configSource?.current() ?? null;
    return desiredFromLabels(this.ownNode.metadata?.labels ?? {}, cfg ? { text: cfg.text, fileName: cfg.fileName } : null, this.opts.defaultConfig, this.configSource?.problem());
  }

  config(): ConfigSnapshot | null {
    return this.configSource?.current() ?? null;
  }

  configProblem(): string | null {
    return this.configSource?.problem() ?? null;
  }
}
