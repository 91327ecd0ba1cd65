/**
 * The cluster catalog on the API server: one ConfigMap (created by the chart;
 * the agent may get, list, watch and patch that one name only) through which
 * the agents share the vGPU type names they learn first-hand, so a node whose
 * cards are all full on first start can name its vGPUs from a node with the
 * same card and driver version. catalog-doc.ts is the content; this is the
 * watch and the merge patch. Trust model: docs/agent.md "The cluster catalog".
 */
import { PatchStrategy, setHeaderOptions, type V1ConfigMap } from '@kubernetes/client-node';
import type { Inventory } from '../../inventory/types.js';
import type { SharedNames } from '../../machine/shared-names.js';
import { Informer } from '../kube/informer.js';
import { describeApiError, type Kube } from '../kube/kube.js';
import type { Logger } from '../kube/logger.js';
import { cardKey, cardsOf, mergeDocs, ownDocs, publishPatch, type MergedCatalog } from './catalog-doc.js';

export interface ClusterCatalogOptions {
  kube: Kube;
  ref: { namespace: string; name: string };
  nodeName: string;
  log: Logger;
  /** The names the catalog gives changed (an entry came, went or now conflicts). */
  onChange: () => void;
}

export class ClusterCatalog implements SharedNames {
  private data: Record<string, string> = {};
  private merged: MergedCatalog = mergeDocs({});
  private informer: Informer<V1ConfigMap> | null = null;
  private reported = '';
  private readonly empty = new Map<number, string>();

  constructor(private readonly opts: ClusterCatalogOptions) {}

  start(): void {
    const { namespace, name } = this.opts.ref;
    const fieldSelector = `metadata.name=${name}`;
    this.informer = new Informer<V1ConfigMap>(this.opts.kube, {
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      list: () => this.opts.kube.core.listNamespacedConfigMap({ namespace, fieldSelector }),
      fieldSelector,
      onChange: (objects) => this.update(objects.find((o) => o.metadata?.name === name)?.data ?? {}),
      onError: (err, attempt) => this.opts.log.warn('reading the cluster catalog failed; retrying', { configMap: `${namespace}/${name}`, attempt, error: err.message }),
    });
    this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
  }

  names(deviceId: string, driverVersion: string): ReadonlyMap<number, string> {
    return this.merged.names.get(cardKey(deviceId, driverVersion)) ?? this.empty;
  }

  /** Share what this node learned first-hand, when it teaches or contradicts the cluster. Never throws. */
  async publish(inv: Inventory): Promise<void> {
    const patch = publishPatch(this.data, ownDocs(inv, this.opts.nodeName), this.opts.nodeName, cardsOf(inv));
    if (!patch) return;
    const { namespace, name } = this.opts.ref;
    try {
      const cm = await this.opts.kube.core.patchNamespacedConfigMap({ namespace, name, body: { data: patch } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      this.update(cm.data ?? {});
      this.opts.log.info('shared vGPU type names in the cluster catalog', { configMap: `${namespace}/${name}`, entries: Object.keys(patch) });
    } catch (err) {
      this.opts.log.warn('cannot write the cluster catalog; other nodes will not learn from this one', { configMap: `${namespace}/${name}`, error: describeApiError(err) });
    }
  }

  private update(data: Record<string, string>): void {
    const before = JSON.stringify([...this.merged.names].map(([k, m]) => [k, [...m]]));
    this.data = data;
    this.merged = mergeDocs(data);
    this.report();
    if (JSON.stringify([...this.merged.names].map(([k, m]) => [k, [...m]])) !== before) this.opts.onChange();
  }

  /** Log conflicts and unreadable entries once each time they change. */
  private report(): void {
    const { conflicts, rejected } = this.merged;
    const text = JSON.stringify([conflicts, rejected]);
    if (text === this.reported) return;
    this.reported = text;
    for (const c of conflicts) this.opts.log.warn('the cluster catalog names a vGPU type in two ways; it stays unknown', { ...c });
    for (const r of rejected) this.opts.log.warn('a cluster catalog entry is not used', { key: r.key, why: r.why });
  }
}
