/**
 * The agent's access to the Kubernetes API, on @kubernetes/client-node:
 * credentials (kubeconfig, including exec and OIDC plugins, or the pod's
 * service account, whose projected token the library re-reads), the typed
 * APIs the agent and the KubeVirt sync call, and a Watch for the informers.
 *
 * What is added on top of the library, and why:
 * - every request carries our User-Agent (`vmgpu-agent/<component>`), so the
 *   API server's audit log and metrics attribute traffic to us;
 * - every request has a deadline (the library has none);
 * - requests are counted by verb for the agent's metrics;
 * - watches ask for bookmarks and a server-side timeout, so a resumed watch
 *   rarely needs a fresh LIST.
 * Errors keep the library's types (ApiException for API answers); use
 * `apiStatus()` and `describeApiError()` to read them.
 */
import * as fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ServerConfiguration,
  Watch,
  createConfiguration,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { messageOf } from '../errors.js';

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

/**
 * Credentials from a kubeconfig file (its current context), or, with no file,
 * from the pod's service account. Fails with what is missing and how to fix it.
 */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) {
    try {
      kc.loadFromFile(file);
    } catch (err) {
      throw new KubeConfigError(`cannot read the kubeconfig ${file}: ${messageOf(err)}`);
    }
    if (!kc.getCurrentContext()) throw new KubeConfigError(`${file}: no current-context; set one with kubectl config use-context`);
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeConfigError(`${file}: context ${kc.getCurrentContext()} names no cluster in the file; check the contexts in the kubeconfig`);
    if (!/^https?:\/\//.test(cluster.server)) throw new KubeConfigError(`${file}: cluster ${cluster.name} has no https:// server`);
    return kc;
  }
  if (!process.env.KUBERNETES_SERVICE_HOST) throw new KubeConfigError('not running in a pod (KUBERNETES_SERVICE_HOST is unset): pass --kubeconfig FILE');
  if (!fs.existsSync(`${IN_CLUSTER_DIR}/token`)) throw new KubeConfigError(`${IN_CLUSTER_DIR}/token is missing: mount a service account token (automountServiceAccountToken) or pass --kubeconfig FILE`);
  kc.loadFromCluster();
  return kc;
}

export interface KubeStats {
  requests: number;
  byVerb: Record<string, number>;
}

export interface KubeOptions {
  userAgent?: string;
  /** Deadline of each (non-watch) request; default 15 s. */
  requestTimeoutMs?: number;
}

/** The typed APIs, sharing one configuration (credentials, User-Agent, deadline, counting). */
export class Kube {
  readonly userAgent: string;
  readonly stats: KubeStats = { requests: 0, byVerb: {} };
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly custom: CustomObjectsApi;
  private readonly watchConfig: KubeConfig;

  constructor(
    readonly config: KubeConfig,
    opts: KubeOptions = {},
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new KubeConfigError('the kubeconfig has no current cluster; check its current-context');
    this.userAgent = opts.userAgent ?? 'vmgpu';
    const timeoutMs = opts.requestTimeoutMs ?? 15_000;
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: config },
      promiseMiddleware: [
        {
          pre: async (ctx: RequestContext) => {
            ctx.setHeaderParam('User-Agent', this.userAgent);
            ctx.setSignal(AbortSignal.timeout(timeoutMs));
            this.count(ctx.getHttpMethod());
            return ctx;
          },
          post: async (res: ResponseContext) => res,
        },
      ],
    });
    this.core = new CoreV1Api(configuration);
    this.coordination = new CoordinationV1Api(configuration);
    this.custom = new CustomObjectsApi(configuration);
    // The library's Watch asks the KubeConfig for its fetch options; this view of
    // the same KubeConfig adds our User-Agent and counts the watch.
    const watchConfig = Object.create(config) as KubeConfig;
    watchConfig.applyToFetchOptions = async (o) => {
      const init = await config.applyToFetchOptions(o);
      (init.headers as unknown as { set(k: string, v: string): void }).set('User-Agent', this.userAgent);
      this.count('WATCH');
      return init;
    };
    this.watchConfig = watchConfig;
  }

  private count(verb: string): void {
    this.stats.requests++;
    this.stats.byVerb[verb] = (this.stats.byVerb[verb] ?? 0) + 1;
  }

  /** A Watch for informers: bookmarks on, and a server-side timeout of 30-45 minutes. */
  watch(): Watch {
    return new BookmarkWatch(this.watchConfig);
  }
}

class BookmarkWatch extends Watch {
  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: 1800 + Math.floor(Math.random() * 900) }, callback, done);
  }
}

/** The HTTP status of an API error (an ApiException, or a failed watch), else undefined. */
export function apiStatus(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  if (e && typeof e.statusCode === 'number') return e.statusCode;
  if (e && typeof e.code === 'number') return e.code;
  return undefined;
}

export const isKubeApiError = (err: unknown, status?: number): boolean => {
  const s = apiStatus(err);
  return s !== undefined && (status === undefined || s === status);
};

/** One line for logs and Events: `HTTP 403 Forbidden: <the API server's message>` or the network error. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = (typeof err.body === 'string' ? safeJson(err.body) : err.body) as { reason?: string; message?: string } | undefined;
    const msg = body?.message ?? (typeof err.body === 'string' && err.body ? err.body.slice(0, 500) : (STATUS_CODES[err.code] ?? ''));
    return `HTTP ${err.code}${body?.reason ? ` ${body.reason}` : ''}: ${msg}`.trim();
  }
  return (err as Error)?.message ?? String(err);
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** A `nodes/NAME`-safe name check (DNS subdomain), so no request is built from arbitrary input. */
export function checkObjectName(name: string, what: string): string {
  if (typeof name !== 'string' || name.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    throw new KubeConfigError(`${what} ${JSON.stringify(name)} is not a valid Kubernetes object name (lower-case letters, digits, '-' and '.', at most 253 characters)`);
  }
  return name;
}

export function checkNamespace(ns: string, what: string): string {
  if (typeof ns !== 'string' || ns.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
    throw new KubeConfigError(`${what} ${JSON.stringify(ns)} is not a valid namespace name (a DNS label)`);
  }
  return ns;
}
