/**
 * What the agent keeps on its own Node, and getting it there: the state
 * label, the status, permitted-host-devices and validation annotations, sent
 * as a merge patch of only the keys that differ (never anyone else's), with
 * backoff while the API server fails; and Events about the Node.
 */
import type { V1Node } from '@kubernetes/client-node';
import { describeApiError, type Kube } from '../kube/kube.js';
import { backoffDelay } from '../kube/backoff.js';
import type { Logger } from '../kube/logger.js';
import { patchNodeMetadata, postNodeEvent } from '../kube/node-api.js';
import { ANNOTATION_PERMITTED, ANNOTATION_STATUS, ANNOTATION_VALIDATION, LABEL_STATE, LABEL_VALIDATION } from './desired.js';
import type { AgentMetrics } from './metrics.js';
import type { AgentStatus, NodeEvent } from './status.js';
import type { ValidationReport } from './validator.js';

export interface NodeMetadata {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** What we know, as labels and annotations; what is not known yet is left out. */
export function nodeMetadataFor(known: { status: AgentStatus | null; permitted: string | null; validation: ValidationReport | null }): NodeMetadata {
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  if (known.status) {
    labels[LABEL_STATE] = known.status.state;
    annotations[ANNOTATION_STATUS] = JSON.stringify(known.status);
  }
  if (known.permitted !== null) annotations[ANNOTATION_PERMITTED] = known.permitted;
  if (known.validation) {
    labels[LABEL_VALIDATION] = known.validation.passed ? 'passed' : 'failed';
    annotations[ANNOTATION_VALIDATION] = JSON.stringify(known.validation);
  }
  return { labels, annotations };
}

/** The wanted keys whose value on the Node differs. */
export function metadataDiff(want: NodeMetadata, have: { labels?: Record<string, string>; annotations?: Record<string, string> } | undefined): NodeMetadata {
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(want.labels)) if (have?.labels?.[k] !== v) labels[k] = v;
  for (const [k, v] of Object.entries(want.annotations)) if (have?.annotations?.[k] !== v) annotations[k] = v;
  return { labels, annotations };
}

const isEmpty = (d: NodeMetadata): boolean => Object.keys(d.labels).length + Object.keys(d.annotations).length === 0;

export interface PublisherOptions {
  /** Null: no API server; nothing is published. */
  kube: Kube | null;
  nodeName: string;
  eventNamespace: string;
  /** Our Node as last seen (the informer's copy); a patch is reflected into it. */
  node(): V1Node | null;
  wanted(): NodeMetadata;
  /** Called after each successful patch. */
  published(): void;
  metrics: AgentMetrics;
  log: Logger;
}

export class NodePublisher {
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private stopped = false;

  constructor(private readonly opts: PublisherOptions) {}

  /** Whether the Node lacks something we want on it (someone else changed our keys). */
  differs(): boolean {
    return !isEmpty(this.diff());
  }

  /** Publish in `ms` unless a publish is already scheduled. */
  schedule(ms: number): void {
    if (this.stopped || !this.opts.kube || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.publish();
    }, ms);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Post an Event about the Node; a failure is logged and counted. */
  event(e: NodeEvent): void {
    const kube = this.opts.kube;
    if (!kube) return;
    const uid = this.opts.node()?.metadata?.uid;
    void postNodeEvent(kube, { name: this.opts.nodeName, ...(uid ? { uid } : {}) }, e.type, e.reason, e.message, this.opts.eventNamespace).catch((err: unknown) => {
      this.opts.metrics.errors.inc({ kind: 'api' });
      this.opts.log.warn('posting an Event failed', { reason: e.reason, error: describeApiError(err) });
    });
  }

  private diff(): NodeMetadata {
    return metadataDiff(this.opts.wanted(), this.opts.node()?.metadata);
  }

  private async publish(): Promise<void> {
    const kube = this.opts.kube;
    if (!kube || !this.opts.node() || this.stopped) return;
    const d = this.diff();
    if (isEmpty(d)) return;
    try {
      await patchNodeMetadata(kube, this.opts.nodeName, d.labels, d.annotations);
      // Reflect the patch into our copy (the informer may have replaced it meanwhile) so an interleaved event does not re-send it.
      const now = this.opts.node();
      if (now) {
        const md = (now.metadata ??= {});
        md.labels = { ...md.labels, ...d.labels };
        md.annotations = { ...md.annotations, ...d.annotations };
      }
      this.failures = 0;
      this.opts.published();
    } catch (err) {
      this.failures++;
      this.opts.metrics.errors.inc({ kind: 'api' });
      const ms = backoffDelay(this.failures, 500, 30_000);
      this.opts.log.warn('updating the Node failed; retrying', { error: describeApiError(err), inMs: ms });
      this.schedule(ms);
    }
  }
}
