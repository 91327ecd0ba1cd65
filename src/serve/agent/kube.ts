/**
 * A small Kubernetes API client: kubeconfig or in-cluster credentials, JSON
 * requests, and streaming watches. The agent needs a handful of calls on its
 * own Node, Events, ConfigMaps, Leases and the KubeVirt CR; a hand-written
 * client keeps the agent's memory small (the generated client alone is tens
 * of MiB) and gives exact control over the user agent, keep-alive sockets and
 * watch resumption.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parse as parseYaml } from 'yaml';

export const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeCredentials {
  /** `https://host:port` */
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** A static bearer token. */
  token?: string;
  /** A token file re-read every minute (projected service account tokens rotate). */
  tokenFile?: string;
  insecureSkipTlsVerify?: boolean;
}

export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

type Obj = Record<string, unknown>;

function named(list: unknown, name: string, what: string, file: string): Obj {
  const arr = Array.isArray(list) ? (list as Obj[]) : [];
  const hit = arr.find((e) => e?.name === name);
  if (!hit || typeof hit[what] !== 'object' || hit[what] === null) throw new KubeConfigError(`${file}: no ${what} named ${JSON.stringify(name)}; check the contexts in the kubeconfig`);
  return hit[what] as Obj;
}

function readRelative(base: string, p: unknown): string | undefined {
  if (typeof p !== 'string' || !p) return undefined;
  const full = p.startsWith('/') ? p : `${base}/${p}`;
  return fs.readFileSync(full, 'utf8');
}

const b64 = (v: unknown): string | undefined => (typeof v === 'string' && v ? Buffer.from(v, 'base64').toString('utf8') : undefined);

/** Credentials from a kubeconfig file (its current context). */
export function loadKubeconfigFile(file: string): KubeCredentials {
  let doc: Obj;
  try {
    doc = parseYaml(fs.readFileSync(file, 'utf8')) as Obj;
  } catch (err) {
    throw new KubeConfigError(`cannot read the kubeconfig ${file}: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object') throw new KubeConfigError(`${file}: not a kubeconfig (expected a YAML mapping)`);
  const ctxName = doc['current-context'];
  if (typeof ctxName !== 'string' || !ctxName) throw new KubeConfigError(`${file}: no current-context; set one with kubectl config use-context`);
  const ctx = named(doc.contexts, ctxName, 'context', file);
  const cluster = named(doc.clusters, String(ctx.cluster), 'cluster', file);
  const user = ctx.user ? named(doc.users, String(ctx.user), 'user', file) : {};
  const base = file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '.';
  const server = cluster.server;
  if (typeof server !== 'string' || !/^https?:\/\//.test(server)) throw new KubeConfigError(`${file}: cluster ${String(ctx.cluster)} has no https:// server`);
  const creds: KubeCredentials = { server: server.replace(/\/+$/, '') };
  const ca = b64(cluster['certificate-authority-data']) ?? readRelative(base, cluster['certificate-authority']);
  if (ca) creds.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) creds.insecureSkipTlsVerify = true;
  const cert = b64(user['client-certificate-data']) ?? readRelative(base, user['client-certificate']);
  const key = b64(user['client-key-data']) ?? readRelative(base, user['client-key']);
  if (cert && key) Object.assign(creds, { cert, key });
  if (typeof user.token === 'string' && user.token) creds.token = user.token;
  if (typeof user.tokenFile === 'string' && user.tokenFile) creds.tokenFile = user.tokenFile;
  if (user.exec || user['auth-provider']) throw new KubeConfigError(`${file}: user ${String(ctx.user)} uses an exec or auth-provider plugin, which vmgpu does not run; use a token, a client certificate or the in-cluster service account`);
  return creds;
}

/** Credentials of the pod's service account (KUBERNETES_SERVICE_HOST/PORT and the projected token). */
export function inClusterCredentials(dir = IN_CLUSTER_DIR): KubeCredentials {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new KubeConfigError('not running in a pod (KUBERNETES_SERVICE_HOST is unset): pass --kubeconfig FILE');
  const tokenFile = `${dir}/token`;
  if (!fs.existsSync(tokenFile)) throw new KubeConfigError(`${tokenFile} is missing: mount a service account token (automountServiceAccountToken) or pass --kubeconfig FILE`);
  const h = host.includes(':') ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, ca: fs.readFileSync(`${dir}/ca.crt`, 'utf8'), tokenFile };
}

export function loadCredentials(kubeconfig: string | undefined): KubeCredentials {
  return kubeconfig ? loadKubeconfigFile(kubeconfig) : inClusterCredentials();
}

/** A non-2xx answer from the API server. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: HTTP ${status} ${reason}: ${message}`);
  }
}

export interface WatchEvent<T = Obj> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  timeoutMs?: number;
}

export interface ClientStats {
  requests: number;
  byVerb: Record<string, number>;
}

export class KubeClient {
  readonly userAgent: string;
  readonly stats: ClientStats = { requests: 0, byVerb: {} };
  private readonly agent: http.Agent;
  private readonly url: URL;
  private tokenCache: { value: string; at: number } | null = null;
  private readonly requestTimeoutMs: number;

  constructor(
    private readonly creds: KubeCredentials,
    opts: { userAgent?: string; requestTimeoutMs?: number } = {},
  ) {
    this.url = new URL(creds.server);
    this.userAgent = opts.userAgent ?? 'vmgpu';
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    const tls = this.url.protocol === 'https:';
    const agentOpts = { keepAlive: true, keepAliveMsecs: 15_000, maxSockets: 8, maxFreeSockets: 2 };
    this.agent = tls
      ? new https.Agent({ ...agentOpts, ...(creds.ca ? { ca: creds.ca } : {}), ...(creds.cert ? { cert: creds.cert, key: creds.key } : {}), rejectUnauthorized: !creds.insecureSkipTlsVerify })
      : new http.Agent(agentOpts);
  }

  private token(): string | undefined {
    if (this.creds.token) return this.creds.token;
    if (!this.creds.tokenFile) return undefined;
    if (!this.tokenCache || Date.now() - this.tokenCache.at > 60_000) {
      this.tokenCache = { value: fs.readFileSync(this.creds.tokenFile, 'utf8').trim(), at: Date.now() };
    }
    return this.tokenCache.value;
  }

  private count(verb: string): void {
    this.stats.requests++;
    this.stats.byVerb[verb] = (this.stats.byVerb[verb] ?? 0) + 1;
  }

  private requestOptions(method: string, path: string, query: RequestOptions['query'], headers: Record<string, string>): http.RequestOptions {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) qs.set(k, String(v));
    const q = qs.toString();
    const token = this.token();
    return {
      protocol: this.url.protocol,
      hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
      port: this.url.port || (this.url.protocol === 'https:' ? 443 : 80),
      method,
      path: `${this.url.pathname.replace(/\/$/, '')}${path}${q ? `?${q}` : ''}`,
      agent: this.agent,
      headers: { Accept: 'application/json', 'User-Agent': this.userAgent, ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
    };
  }

  /** One JSON request. Resolves with the parsed body on 2xx; rejects with KubeApiError otherwise. */
  async request<T = Obj>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = payload === undefined ? {} : { 'Content-Type': o.contentType ?? 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) };
    const ro = this.requestOptions(method, path, o.query, headers);
    this.count(method);
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = mod.request(ro, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = text;
          }
          if (status >= 200 && status < 300) resolve(body as T);
          else {
            const b = (body ?? {}) as Obj;
            reject(new KubeApiError(status, String(b.reason ?? res.statusMessage ?? ''), String(b.message ?? text).slice(0, 2000), method, path));
          }
        });
      });
      req.setTimeout(o.timeoutMs ?? this.requestTimeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${o.timeoutMs ?? this.requestTimeoutMs} ms`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /**
   * A watch stream. `onEvent` is called for each event; the promise resolves
   * when the server ends the stream and rejects on a non-2xx answer or a
   * network error. `signal` aborts it (resolving).
   */
  watch<T = Obj>(path: string, query: RequestOptions['query'], onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const ro = this.requestOptions('GET', path, { ...query, watch: true }, {});
    this.count('WATCH');
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      // Watches get their own connection (not the keep-alive pool), so the TLS material goes on the request.
      const tls = { ...(this.creds.ca ? { ca: this.creds.ca } : {}), ...(this.creds.cert ? { cert: this.creds.cert, key: this.creds.key } : {}), rejectUnauthorized: !this.creds.insecureSkipTlsVerify };
      const req = mod.request({ ...ro, ...tls, agent: false }, (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let b: Obj = {};
            try {
              b = JSON.parse(text) as Obj;
            } catch {
              /* not JSON */
            }
            finish(new KubeApiError(status, String(b.reason ?? ''), String(b.message ?? text).slice(0, 2000), 'WATCH', path));
          });
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let ev: WatchEvent<T>;
            try {
              ev = JSON.parse(line) as WatchEvent<T>;
            } catch {
              finish(new Error(`WATCH ${path}: the server sent a line that is not JSON: ${line.slice(0, 200)}`));
              req.destroy();
              return;
            }
            try {
              onEvent(ev);
            } catch (err) {
              finish(err as Error);
              req.destroy();
              return;
            }
          }
        });
        res.on('end', () => finish());
        res.on('error', (err) => finish(err));
        res.on('close', () => finish(res.complete ? undefined : new Error(`WATCH ${path}: the connection closed mid-stream`)));
      });
      req.on('socket', (s) => s.setKeepAlive(true, 10_000));
      req.on('error', (err) => finish(err));
      const onAbort = () => {
        req.destroy();
        finish();
      };
      signal.addEventListener('abort', onAbort);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export const isKubeApiError = (err: unknown, status?: number): err is KubeApiError => err instanceof KubeApiError && (status === undefined || err.status === status);

/** A `nodes/NAME`-safe name check (DNS subdomain), so no path is built from arbitrary input. */
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
