// A real Kubernetes control plane for integration tests: etcd and kube-apiserver (built
// from the pinned Go modules by scripts/build-k8s-tools.mjs) on 127.0.0.1 with free ports,
// a throw-away CA, service-account signing keys, `--authorization-mode=Node,RBAC` and the
// default admission chain (ValidatingAdmissionPolicy included) plus NodeRestriction.
//
//   const cp = await startControlPlane();
//   after(() => cp.stop());
//   const core = cp.kubeConfig.makeApiClient(CoreV1Api);
//
// Teardown: stop() ends both process groups and removes the temporary directory. If a test
// forgets stop(), fails, or is interrupted, an exit/SIGINT/SIGTERM/SIGHUP hook does the same,
// and a small watchdog process does it if this Node process is killed outright (SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import './client-node-check.js';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  type V1CustomResourceDefinition,
  type V1Node,
  type V1BoundObjectReference,
} from '@kubernetes/client-node';
import { makePki, type CertFiles, type Pki } from './controlplane-pki.js';
import { k8sTools, type K8sTools } from './k8s-tools.js';
import { freePort, get, killGroupSync, launch, PortClash, sleep, stopProc, waitReady, type Proc } from './procs.js';

export interface ControlPlaneOptions {
  /** Directory holding kube-apiserver and etcd; default: the build script's cache. */
  binDir?: string;
  /** Extra kube-apiserver flags (appended; a later flag wins). */
  apiServerArgs?: string[];
  /** Ports to try first (e.g. to exercise the clash retry); later attempts use free ports. */
  preferredPorts?: { apiserver?: number; etcdClient?: number; etcdPeer?: number };
  /** How long to wait for /readyz (default 60 s). */
  readyTimeoutMs?: number;
}

export interface ServiceAccountKubeConfigOptions {
  /** Token audiences; default: the API server's own audience. */
  audiences?: string[];
  /** Token lifetime in seconds (minimum 600, default 3600). */
  expirationSeconds?: number;
  /** Bind the token to an object; it is then invalid once that object is gone. */
  boundTo?: { kind: 'Node' | 'Pod' | 'Secret'; name: string };
  /** Create the namespace and the ServiceAccount when missing (default true). */
  create?: boolean;
}

export interface ServiceAccountCredentials {
  kubeConfig: KubeConfig;
  kubeconfigPath: string;
  token: string;
  expiresAt: Date;
}

export interface ControlPlaneMemory {
  etcdRssKiB: number;
  apiserverRssKiB: number;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  /** Admin (system:masters) kubeconfig file, certificates embedded. */
  kubeconfigPath: string;
  /** The same admin identity as a client-node KubeConfig. */
  kubeConfig: KubeConfig;
  caPem: string;
  versions: K8sTools['versions'];
  /** Temporary directory (PKI, etcd data, logs); removed by stop(). */
  dir: string;
  pids: { etcd: number; apiserver: number };
  /** How many start attempts were needed (more than 1 after a port clash). */
  attempts: number;
  /** Milliseconds from spawning etcd to kube-apiserver answering /readyz 200. */
  startupMs: number;
  /** Where start-up time went: certificates (made while etcd starts), etcd to /health, kube-apiserver to /readyz. */
  timings: { pkiMs: number; etcdMs: number; apiserverMs: number };
  stop(): Promise<void>;
  createNode(name: string, labels?: Record<string, string>): Promise<V1Node>;
  /** Creates a CRD and waits until it is Established and served. */
  registerCrd(crd: V1CustomResourceDefinition): Promise<V1CustomResourceDefinition>;
  /** A kubeconfig for a ServiceAccount, with a token minted through the TokenRequest API. */
  serviceAccountKubeConfig(namespace: string, name: string, opts?: ServiceAccountKubeConfigOptions): Promise<ServiceAccountCredentials>;
  /** A kubeconfig for the kubelet identity system:node:<name> (group system:nodes). */
  nodeKubeConfig(nodeName: string): { kubeConfig: KubeConfig; kubeconfigPath: string };
  /** A kubeconfig with a client certificate for user `cn` in `groups` (e.g. system:kube-scheduler). */
  clientKubeConfig(cn: string, groups?: string[]): { kubeConfig: KubeConfig; kubeconfigPath: string };
  /** The test CA's certificate file (clients verify the API server with it; it signs every client certificate). */
  caFile: string;
  /** Resident memory of etcd and kube-apiserver, from /proc/<pid>/status VmRSS. */
  memoryUsage(): ControlPlaneMemory;
}

/** A minimal KubeVirt CRD (kubevirt.io/v1 KubeVirt, namespaced) owned by these tests. */
export function kubevirtCrd(): V1CustomResourceDefinition {
  // client-node's model spells x-kubernetes-preserve-unknown-fields this way; its serializer
  // writes the real field name (an unknown key would be dropped and the spec pruned).
  const open = { type: 'object', x_kubernetes_preserve_unknown_fields: true };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'kubevirts.kubevirt.io' },
    spec: {
      group: 'kubevirt.io',
      names: { kind: 'KubeVirt', listKind: 'KubeVirtList', plural: 'kubevirts', singular: 'kubevirt', shortNames: ['kv', 'kvs'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', properties: { spec: { ...open }, status: { ...open } } } },
          subresources: { status: {} },
        },
      ],
    },
  };
}

// ---- process bookkeeping ------------------------------------------------------------

interface Live {
  dir: string;
  procs: Proc[];
  watchdog?: ChildProcess;
}

const live = new Set<Live>();
let hooksInstalled = false;

function destroySync(l: Live): void {
  for (const p of l.procs) killGroupSync(p.child.pid, 'SIGKILL');
  killGroupSync(l.watchdog?.pid, 'SIGKILL');
  rmSync(l.dir, { recursive: true, force: true });
  live.delete(l);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const l of [...live]) destroySync(l);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const l of [...live]) destroySync(l);
      process.removeListener(sig, onSignal);
      // Re-raise so the default action (or another listener) still ends the process.
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// Kills the process groups listed in <dir>/pgids and removes <dir> once `parent` is gone.
// Arguments are passed positionally, never interpolated into the script. (dash's kill
// takes no `--`: a negative number after the signal is a process group.)
const WATCHDOG = `
parent="$1"; dir="$2"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -f "$dir/pgids" ]; then for g in $(cat "$dir/pgids"); do kill -KILL "-$g" 2>/dev/null; done; fi
rm -rf -- "$dir"
`;

function startWatchdog(l: Live): void {
  const wd = spawn('sh', ['-c', WATCHDOG, 'vmgpu-controlplane-watchdog', String(process.pid), l.dir], {
    detached: true,
    stdio: 'ignore',
  });
  wd.on('error', () => {
    /* best effort: the exit hooks still clean up */
  });
  wd.unref();
  l.watchdog = wd;
}

function recordPgids(l: Live): void {
  writeFileSync(join(l.dir, 'pgids'), l.procs.map((p) => p.child.pid).filter(Boolean).join('\n') + '\n');
}

function launchIn(l: Live, name: string, bin: string, args: string[], attempt: number): Proc {
  const proc = launch(l.dir, name, bin, args, { attempt });
  l.procs.push(proc);
  recordPgids(l);
  return proc;
}

function kubeConfigFor(server: string, caPem: string, user: Record<string, string>, userName: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'vmgpu-test', server, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false }],
    users: [{ name: userName, ...user }],
    contexts: [{ name: userName, cluster: 'vmgpu-test', user: userName }],
    currentContext: userName,
  });
  return kc;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function statusCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

async function ignoreConflict<T>(p: Promise<T>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (statusCode(e) !== 409) throw e;
  }
}

function rssKiB(pid: number | undefined, name: string): number {
  if (!pid) throw new Error(`${name} has no pid`);
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`/proc/${pid}/status (${name}) has no VmRSS line`);
  return Number(m[1]);
}

// ---- start ----------------------------------------------------------------------------

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const tools = k8sTools(opts.binDir);
  installHooks();
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-cp-'));
  const l: Live = { dir, procs: [] };
  live.add(l);
  startWatchdog(l);
  try {
    return await startIn(l, tools, opts);
  } catch (e) {
    destroySync(l);
    throw e;
  }
}

async function startIn(l: Live, tools: K8sTools, opts: ControlPlaneOptions): Promise<ControlPlane> {
  const started = Date.now();
  const maxAttempts = 3;
  let pki: Pki | undefined;
  let pkiMs = 0;

  // etcd, retried on a port clash with new ports.
  let etcd: Proc | undefined;
  let etcdUrl = '';
  let attempts = 0;
  for (let attempt = 1; !etcd; attempt++) {
    attempts = Math.max(attempts, attempt);
    const pref = attempt === 1 ? opts.preferredPorts : undefined;
    const client = pref?.etcdClient ?? (await freePort());
    const peer = pref?.etcdPeer ?? (await freePort());
    etcdUrl = `http://127.0.0.1:${client}`;
    const args = [
      '--name=vmgpu-test',
      `--data-dir=${join(l.dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=vmgpu-test=http://127.0.0.1:${peer}`,
      '--unsafe-no-fsync', // test data only: skip fsync for speed
      '--log-level=warn',
    ];
    const p = launchIn(l, 'etcd', tools.etcd, args, attempt);
    if (!pki) {
      // Made while etcd starts: etcd needs none of it.
      const tPki = Date.now();
      pki = makePki(l.dir);
      pkiMs = Date.now() - tPki;
    }
    try {
      await waitReady(p, 'answering /health', 20_000, () => get(`${etcdUrl}/health`), `${tools.etcd} ${args.join(' ')}`);
      etcd = p;
    } catch (e) {
      await stopProc(p, 2000);
      if (!(e instanceof PortClash) || attempt >= maxAttempts) throw e instanceof PortClash ? new Error(`etcd: its ports were taken on all ${maxAttempts} attempts (address already in use)`) : e;
    }
  }

  const etcdMs = Date.now() - started;
  if (!pki) throw new Error('internal: PKI was not made');
  const adminTls = { ca: pki.caPem, cert: readFileSync(pki.admin.cert, 'utf8'), key: readFileSync(pki.admin.key, 'utf8') };

  // kube-apiserver, retried on a port clash with a new port.
  let apiserver: Proc | undefined;
  let server = '';
  for (let attempt = 1; !apiserver; attempt++) {
    attempts = Math.max(attempts, attempt);
    const port = (attempt === 1 ? opts.preferredPorts?.apiserver : undefined) ?? (await freePort());
    server = `https://127.0.0.1:${port}`;
    const args = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // Since 1.37 the default (lease) endpoint reconciler refuses a loopback advertise address;
      // nothing in the tests reaches the API server through the kubernetes Service.
      '--endpoint-reconciler-type=none',
      `--secure-port=${port}`,
      `--cert-dir=${join(l.dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.serving.cert}`,
      `--tls-private-key-file=${pki.serving.key}`,
      `--client-ca-file=${pki.ca.cert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPublicKey}`,
      `--service-account-signing-key-file=${pki.saSigningKey}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--profiling=false',
      ...(opts.apiServerArgs ?? []),
    ];
    const p = launchIn(l, 'kube-apiserver', tools.kubeApiserver, args, attempt);
    try {
      await waitReady(p, 'answering /readyz with 200', opts.readyTimeoutMs ?? 60_000, () => get(`${server}/readyz`, adminTls), `${tools.kubeApiserver} ${args.join(' ')}`);
      apiserver = p;
    } catch (e) {
      await stopProc(p, 2000);
      if (!(e instanceof PortClash) || attempt >= maxAttempts) throw e instanceof PortClash ? new Error(`kube-apiserver: its port was taken on all ${maxAttempts} attempts (address already in use)`) : e;
    }
  }
  const startupMs = Date.now() - started;
  l.procs = [etcd, apiserver];
  recordPgids(l);

  const kubeConfig = kubeConfigFor(
    server,
    pki.caPem,
    { certData: Buffer.from(adminTls.cert).toString('base64'), keyData: Buffer.from(adminTls.key).toString('base64') },
    'vmgpu-test-admin',
  );
  const kubeconfigPath = join(l.dir, 'admin.kubeconfig');
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apiext = kubeConfig.makeApiClient(ApiextensionsV1Api);
  let clientCerts = 0;
  let stopped: Promise<void> | undefined;

  const cp: ControlPlane = {
    server,
    kubeconfigPath,
    kubeConfig,
    caPem: pki.caPem,
    caFile: pki.ca.cert,
    versions: tools.versions,
    dir: l.dir,
    pids: { etcd: etcd.child.pid ?? 0, apiserver: apiserver.child.pid ?? 0 },
    attempts,
    startupMs,
    timings: { pkiMs, etcdMs, apiserverMs: startupMs - etcdMs },

    stop() {
      stopped ??= (async () => {
        if (l.procs[1]) await stopProc(l.procs[1], 5000);
        if (l.procs[0]) await stopProc(l.procs[0], 5000);
        destroySync(l);
      })();
      return stopped;
    },

    async createNode(name, labels = {}) {
      if (!DNS_SUBDOMAIN.test(name)) throw new Error(`node name ${JSON.stringify(name)} is not a DNS subdomain`);
      return core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } } });
    },

    async registerCrd(crd) {
      const created = await apiext.createCustomResourceDefinition({ body: crd });
      const name = created.metadata?.name ?? '';
      const version = crd.spec.versions.find((v) => v.storage)?.name ?? crd.spec.versions[0]?.name;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const cur = await apiext.readCustomResourceDefinition({ name });
        const established = cur.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
        if (established) {
          const disc = await get(`${server}/apis/${crd.spec.group}/${version}`, adminTls);
          if ('status' in disc && disc.status === 200 && disc.body.includes(`"name":"${crd.spec.names.plural}"`)) return cur;
        }
        if (Date.now() > deadline) throw new Error(`CRD ${name} was not Established and served within 30 s: ${JSON.stringify(cur.status?.conditions)}`);
        await sleep(100);
      }
    },

    async serviceAccountKubeConfig(namespace, name, o = {}) {
      if (!DNS_LABEL.test(namespace)) throw new Error(`namespace ${JSON.stringify(namespace)} is not a DNS label`);
      if (!DNS_SUBDOMAIN.test(name)) throw new Error(`service account name ${JSON.stringify(name)} is not a DNS subdomain`);
      if (o.create !== false) {
        await ignoreConflict(core.createNamespace({ body: { metadata: { name: namespace } } }));
        await ignoreConflict(core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }));
      }
      let boundObjectRef: V1BoundObjectReference | undefined;
      if (o.boundTo) {
        const { kind, name: objName } = o.boundTo;
        const obj =
          kind === 'Node'
            ? await core.readNode({ name: objName })
            : kind === 'Pod'
              ? await core.readNamespacedPod({ namespace, name: objName })
              : await core.readNamespacedSecret({ namespace, name: objName });
        boundObjectRef = { apiVersion: 'v1', kind, name: objName, uid: obj.metadata?.uid };
      }
      const tr = await core.createNamespacedServiceAccountToken({
        namespace,
        name,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: o.audiences ?? [], expirationSeconds: o.expirationSeconds ?? 3600, ...(boundObjectRef ? { boundObjectRef } : {}) },
        },
      });
      const token = tr.status?.token;
      if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
      const kc = kubeConfigFor(server, pki.caPem, { token }, `system:serviceaccount:${namespace}:${name}`);
      const path = join(l.dir, `sa-${namespace}-${name}.kubeconfig`);
      writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
      return { kubeConfig: kc, kubeconfigPath: path, token, expiresAt: new Date(tr.status?.expirationTimestamp ?? 0) };
    },

    nodeKubeConfig(nodeName) {
      if (!DNS_SUBDOMAIN.test(nodeName)) throw new Error(`node name ${JSON.stringify(nodeName)} is not a DNS subdomain`);
      return cp.clientKubeConfig(`system:node:${nodeName}`, ['system:nodes']);
    },

    clientKubeConfig(cn, groups = []) {
      const stem = `client-${++clientCerts}`;
      const files: CertFiles = pki.clientCert(stem, cn, groups);
      const kc = kubeConfigFor(server, pki.caPem, { certData: readFileSync(files.cert).toString('base64'), keyData: readFileSync(files.key).toString('base64') }, cn);
      const path = join(l.dir, `${stem}.kubeconfig`);
      writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
      return { kubeConfig: kc, kubeconfigPath: path };
    },

    memoryUsage() {
      return { etcdRssKiB: rssKiB(cp.pids.etcd, 'etcd'), apiserverRssKiB: rssKiB(cp.pids.apiserver, 'kube-apiserver') };
    },
  };
  return cp;
}

/** True while any control plane started by this process still has its directory. */
export function liveControlPlaneDirs(): string[] {
  return [...live].map((l) => l.dir).filter((d) => existsSync(d));
}
