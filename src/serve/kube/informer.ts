/**
 * List + watch of a collection on client-node's ListWatch (one LIST, then one
 * long-lived WATCH resumed from the last resourceVersion; a fresh LIST only
 * after a 410). The library stops on any other error and leaves the retry to
 * the caller: this class retries with exponential backoff and jitter,
 * resuming from the last resourceVersion, and reports each error. At steady
 * state this is one open connection and no requests.
 */
import { ADD, CONNECT, DELETE, ERROR, ListWatch, UPDATE, type KubernetesListObject, type KubernetesObject, type V1Node } from '@kubernetes/client-node';
import { backoffDelay } from './backoff.js';
import { describeApiError, type Kube } from './kube.js';

/** What the agent reads of any object; the typed client-node models all fit it. */
export interface KubeObject extends KubernetesObject {
  [k: string]: unknown;
}

export interface InformerOptions<T extends KubernetesObject> {
  /** Collection path for the watch, e.g. `/api/v1/nodes`. */
  path: string;
  /** The LIST of the same collection with the same selectors (a typed client-node call). */
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  /** Called after the cache changed (an object added, updated or deleted) and after every LIST. */
  onChange: (objects: readonly T[]) => void;
  /** Called on every connection problem (for logs and metrics). */
  onError?: (err: Error, attempt: number) => void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export interface InformerStats {
  lists: number;
  watches: number;
  errors: number;
}

export class Informer<T extends KubernetesObject = KubeObject> {
  readonly stats: InformerStats = { lists: 0, watches: 0, errors: 0 };
  private readonly lw: ListWatch<T>;
  private failures = 0;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    kube: Kube,
    private readonly opts: InformerOptions<T>,
  ) {
    const changed = () => {
      this.failures = 0;
      if (!this.stopped) opts.onChange(this.lw.list());
    };
    const list = async () => {
      this.stats.lists++;
      const res = await opts.list();
      // Also report a list that changed nothing (an empty or unchanged collection), once
      // ListWatch has filled its cache from it (it does so right after this promise).
      setImmediate(changed);
      return res;
    };
    this.lw = new ListWatch<T>(opts.path, kube.watch(), list, false, opts.labelSelector, opts.fieldSelector);
    this.lw.on(ADD, changed);
    this.lw.on(UPDATE, changed);
    this.lw.on(DELETE, changed);
    this.lw.on(CONNECT, () => this.stats.watches++);
    this.lw.on(ERROR, (err: unknown) => this.failed(err));
  }

  /** Objects in the cache now. */
  list(): readonly T[] {
    return this.lw.list();
  }

  start(): void {
    this.stopped = false;
    void this.lw.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    await this.lw.stop();
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    this.stats.errors++;
    this.failures++;
    const e = err instanceof Error ? err : new Error(String(err));
    this.opts.onError?.(new Error(`${this.opts.path}: ${describeApiError(e)}`, { cause: e }), this.failures);
    const ms = backoffDelay(this.failures, this.opts.backoffInitialMs ?? 500, this.opts.backoffMaxMs ?? 30_000);
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.stopped) void this.lw.start();
    }, ms);
  }
}

/** List + watch of one Node by name (the agent's own): `onChange` gets it, or null while it does not exist. */
export function watchNode(kube: Kube, name: string, opts: Pick<InformerOptions<V1Node>, 'onError' | 'backoffInitialMs' | 'backoffMaxMs'> & { onChange: (node: V1Node | null) => void }): Informer<V1Node> {
  const fieldSelector = `metadata.name=${name}`;
  const informer = new Informer<V1Node>(kube, {
    ...opts,
    path: '/api/v1/nodes',
    list: () => kube.core.listNode({ fieldSelector }),
    fieldSelector,
    onChange: (nodes) => opts.onChange(nodes.find((n) => n.metadata?.name === name) ?? null),
  });
  informer.start();
  return informer;
}
