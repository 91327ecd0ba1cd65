/**
 * List + watch of a collection (informer-style): one LIST, then one
 * long-lived WATCH from the list's resourceVersion with bookmarks, resumed
 * from the last seen resourceVersion when the stream ends or the connection
 * drops, and a fresh LIST only when the server says that version is gone
 * (410). At steady state this is one open connection and no requests.
 */
import { backoffDelay, sleepUnlessAborted } from './backoff.js';
import { isKubeApiError, type KubeClient, type WatchEvent } from './kube.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

export interface InformerOptions {
  /** Collection path, e.g. `/api/v1/nodes`. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Called after the store changed (a list, or an event). */
  onChange: (store: ReadonlyMap<string, KubeObject>, cause: 'list' | 'ADDED' | 'MODIFIED' | 'DELETED') => void;
  /** Called on every connection problem (for logs and metrics). */
  onError?: (err: Error, phase: 'list' | 'watch', attempt: number) => void;
  /** Called when the watch is (re)connected and in sync. */
  onSynced?: () => void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Server-side watch timeout; a fresh WATCH (not a LIST) follows. Default 30-45 minutes. */
  watchTimeoutSeconds?: () => number;
}

export interface InformerStats {
  lists: number;
  watches: number;
  relistsOn410: number;
}

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Informer {
  readonly store = new Map<string, KubeObject>();
  readonly stats: InformerStats = { lists: 0, watches: 0, relistsOn410: 0 };
  private rv: string | null = null;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private synced = false;

  constructor(
    private readonly client: KubeClient,
    private readonly o: InformerOptions,
  ) {}

  get hasSynced(): boolean {
    return this.synced;
  }

  get resourceVersion(): string | null {
    return this.rv;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private query(): Record<string, string | undefined> {
    return { fieldSelector: this.o.fieldSelector, labelSelector: this.o.labelSelector };
  }

  private async list(): Promise<void> {
    this.stats.lists++;
    const res = await this.client.request<{ metadata?: { resourceVersion?: string }; items?: KubeObject[] }>('GET', this.o.path, { query: this.query() });
    this.store.clear();
    for (const it of res.items ?? []) this.store.set(keyOf(it), it);
    this.rv = res.metadata?.resourceVersion ?? null;
    this.synced = true;
    this.o.onChange(this.store, 'list');
  }

  private apply(ev: WatchEvent<KubeObject>): void {
    const obj = ev.object;
    if (ev.type === 'ERROR') {
      const st = obj as unknown as { code?: number; reason?: string; message?: string };
      const err = new Error(`watch ${this.o.path}: ${st.reason ?? 'error'}: ${st.message ?? ''}`) as Error & { code?: number };
      err.code = st.code;
      throw err;
    }
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.rv = rv;
    if (ev.type === 'BOOKMARK') return;
    if (ev.type === 'DELETED') this.store.delete(keyOf(obj));
    else this.store.set(keyOf(obj), obj);
    this.o.onChange(this.store, ev.type);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        this.stats.watches++;
        let sawEvent = false;
        const timeout = this.o.watchTimeoutSeconds?.() ?? 1800 + Math.floor(Math.random() * 900);
        const watching = this.client.watch<KubeObject>(
          this.o.path,
          { ...this.query(), resourceVersion: this.rv ?? undefined, allowWatchBookmarks: true, timeoutSeconds: timeout },
          (ev) => {
            if (!sawEvent) {
              sawEvent = true;
              failures = 0;
            }
            this.apply(ev);
          },
          signal,
        );
        this.o.onSynced?.();
        await watching;
        failures = 0; // a clean end (server timeout): resume at once
      } catch (err) {
        if (signal.aborted) break;
        const e = err as Error & { code?: number };
        if (e.code === 410 || isKubeApiError(err, 410)) {
          this.stats.relistsOn410++;
          needList = true;
          continue;
        }
        failures++;
        this.o.onError?.(e, needList ? 'list' : 'watch', failures);
        await sleepUnlessAborted(backoffDelay(failures, this.o.backoffInitialMs ?? 500, this.o.backoffMaxMs ?? 30_000), signal);
      }
    }
  }
}
