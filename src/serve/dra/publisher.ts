/**
 * Keeps the node's ResourceSlices equal to the pool: a watch of this node's
 * slices of this driver (the kubelet deletes them when it restarts or the
 * plugin goes away), and a write pass, one at a time, whenever the pool or
 * the slices change. Each slice carries a hash of its content, so an
 * unchanged pool costs no writes; a changed one is written with the next
 * pool generation (all slices), then surplus slices are deleted. The
 * scheduler ignores a pool while its slices disagree, so a half-written pool
 * is unusable rather than wrong.
 */
import { createHash } from 'node:crypto';
import { messageOf } from '../errors.js';
import { Informer } from '../kube/informer.js';
import { isKubeApiError, type Kube } from '../kube/kube.js';
import type { Logger } from '../kube/logger.js';
import type { DraApiClient } from './api.js';
import type { Pool } from './devices.js';
import { slicesOf, type SliceObject } from './slices.js';

const HASH_ANNOTATION = 'vmgpu.io/slice-content';

function contentHash(s: SliceObject): string {
  const { pool, ...rest } = s.spec;
  return createHash('sha256').update(JSON.stringify({ ...rest, count: pool.resourceSliceCount })).digest('hex').slice(0, 32);
}

export interface PublisherStats {
  writes: number;
  passes: number;
}

export class SlicePublisher {
  readonly stats: PublisherStats = { writes: 0, passes: 0 };
  private pool: Pool | null = null;
  private informer: Informer<SliceObject & { metadata: { name: string; annotations?: Record<string, string> } }> | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly kube: Kube,
    private readonly api: DraApiClient,
    private readonly log: Logger,
  ) {}

  /** Watch the node's slices: a slice someone else deleted or changed is written again. */
  start(): void {
    this.informer = new Informer(this.kube, {
      path: '/apis/resource.k8s.io/v1/resourceslices',
      list: () => this.api.listSlices() as never,
      fieldSelector: this.api.sliceSelector,
      onChange: (slices) => {
        if (this.pool && !this.matches(slices)) this.kick();
      },
      onError: (err) => this.log.warn('watching the ResourceSlices failed; retrying', { error: err.message }),
    });
    this.informer.start();
  }

  /** Publish `pool`; resolves once the API holds it (or the pass failed, which is logged and retried on the next change). */
  async publish(pool: Pool): Promise<void> {
    this.pool = pool;
    this.kick();
    while (this.running) await this.running;
  }

  async stop(opts: { removeSlices?: boolean } = {}): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
    while (this.running) await this.running;
    if (opts.removeSlices) {
      const { items } = await this.api.listSlices();
      for (const s of items) await this.api.deleteSlice(s.metadata.name).catch(() => {});
    }
  }

  private matches(existing: readonly { metadata: { name: string; annotations?: Record<string, string> }; spec: SliceObject['spec'] }[]): boolean {
    const want = slicesOf(this.api.nodeName, this.pool!, 0);
    if (existing.length !== want.length) return false;
    const gens = new Set(existing.map((s) => s.spec.pool.generation));
    return gens.size === 1 && want.every((w) => existing.some((e) => e.metadata.name === w.metadata.name && e.metadata.annotations?.[HASH_ANNOTATION] === contentHash(w)));
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err: unknown) => this.log.error('publishing the ResourceSlices failed', { error: messageOf(err) }));
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = null));
  }

  private async pass(): Promise<void> {
    this.stats.passes++;
    const { items } = await this.api.listSlices();
    if (this.matches(items)) return;
    const generation = Math.max(0, ...items.map((s) => s.spec.pool.generation)) + 1;
    const want = slicesOf(this.api.nodeName, this.pool!, generation);
    for (const w of want) {
      w.metadata.annotations = { [HASH_ANNOTATION]: contentHash(w) };
      const old = items.find((s) => s.metadata.name === w.metadata.name);
      this.stats.writes++;
      if (old) await this.api.replaceSlice({ ...w, metadata: { ...w.metadata, resourceVersion: old.metadata.resourceVersion! } });
      else await this.api.createSlice(w);
    }
    for (const s of items) {
      if (want.some((w) => w.metadata.name === s.metadata.name)) continue;
      this.stats.writes++;
      await this.api.deleteSlice(s.metadata.name).catch((err: unknown) => {
        if (!isKubeApiError(err, 404)) throw err;
      });
    }
    this.log.info('published ResourceSlices', { generation, slices: want.length, devices: this.pool!.devices.length, counterSets: this.pool!.counterSets.length });
  }
}
