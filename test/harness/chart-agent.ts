// Runs `vmgpu agent` the way the Helm chart's DaemonSet would have the kubelet run it: the
// rendered container's args, env and volumeMounts, its pod's hostPID/hostIPC and
// securityContext, and the service-account token of a real Pod bound to the node. Each
// hostPath volume is mapped to a directory of the test (the simulated node stands in for the
// machine) and bind-mounted at its mountPath in a private root, as a container runtime does.
//
// What differs from a pod, and why (every difference is declared by the caller or listed here):
// - The image: the agent's bundle (dist/bundle) at /opt/vmgpu as in deploy/Dockerfile, with the
//   image's ENV, on this machine's /usr and a few /etc files (read-only) instead of node:20-bookworm-slim.
// - The Pod object exists (so the token carries the node-name claim the admission policy
//   checks), but its container is a busybox `sleep` stand-in with no volumes: the agent
//   process itself runs here, outside the kubelet.
// - No pod network: the agent shares the test's network namespace; KUBERNETES_SERVICE_HOST/PORT
//   point at the API server's loopback address (what kube-proxy's translation amounts to).
// - `substitute`: flags the caller replaces (e.g. --sysfs-root=/sys -> --simulate=…, because
//   the hardware is simulated) and extra mounts; a replaced flag the chart no longer renders is an error.
import { mkdirSync, existsSync, readFileSync, statSync, symlinkSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Container, type V1DaemonSet, type V1Pod, type V1PodSpec, type V1Volume } from '@kubernetes/client-node';
import { imageRuntimeEnv } from './image.js';
import { get, launch, stopProc, waitReady, type Proc } from './procs.js';

export interface ChartAgentOptions {
  /** The DaemonSet and ConfigMaps `helm template` rendered. */
  daemonSet: V1DaemonSet;
  configMaps: { metadata?: { name?: string }; data?: Record<string, string> }[];
  /** Admin access, to create the stand-in Pod and mint its token. */
  admin: KubeConfig;
  apiServer: { host: string; port: number; caPem: string };
  nodeName: string;
  /** Maps a hostPath the chart mounts to the test's directory standing in for it; throw for one the test has no stand-in for. */
  hostPath(path: string): string;
  /** Built bundle (test/harness/image.ts buildBundle()). */
  bundle: string;
  /** Working directory (volumes, the root, the log). */
  dir: string;
  substitute?: { args?: Record<string, string>; mounts?: { source: string; mountPath: string; readOnly?: boolean }[] };
}

export interface ChartAgent {
  pod: V1Pod;
  proc: Proc;
  /** The argv and environment the agent got. */
  args: string[];
  env: Record<string, string>;
  /** PID of the agent's node process (in its own PID namespace, under unshare and sh), or 0 when not running. */
  agentPid(): number;
  /** Waits for the chart's readinessProbe (GET /readyz on the metrics port) to pass. */
  ready(timeoutMs?: number): Promise<void>;
  /** Waits for the chart's livenessProbe (GET /healthz): running, Ready or not (an agent that reports failed is not Ready). */
  live(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const repo = resolve(import.meta.dirname, '..', '..');
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

// Runs as PID 1 of a new PID namespace (unshare --pid --fork) in a private mount namespace:
// builds the root in a tmpfs, mounts /proc for the new PID namespace, binds each volume,
// makes the root read-only when asked, then becomes the agent. Mounts come from a file, one
// "source<TAB>target<TAB>ro|rw" per line; nothing is interpolated into the script.
const ROOT_SETUP = `
set -eu
R="$1"; MOUNTS="$2"; RO_ROOT="$3"; shift 3
m() { mount -n "$@"; }
m -t tmpfs -o mode=755 tmpfs "$R"
mkdir "$R/usr" "$R/etc"; m --bind /usr "$R/usr"; m -o remount,bind,ro "$R/usr"
for f in passwd group hosts resolv.conf nsswitch.conf; do if [ -f "/etc/$f" ]; then touch "$R/etc/$f"; m --bind "/etc/$f" "$R/etc/$f"; m -o remount,bind,ro "$R/etc/$f"; fi; done
for l in bin lib lib64 sbin; do if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"; elif [ -d "/$l" ]; then mkdir "$R/$l"; m --bind "/$l" "$R/$l"; m -o remount,bind,ro "$R/$l"; fi; done
mkdir -p "$R/proc" "$R/dev" "$R/tmp" "$R/run"
m -t proc proc "$R/proc"
m -t tmpfs -o mode=755 tmpfs "$R/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  n=\${d%%:*}; mm=\${d#*:}; mknod -m 666 "$R/dev/$n" c "\${mm%%:*}" "\${mm#*:}"
done
while IFS='	' read -r src dst mode; do
  if [ -d "$src" ]; then mkdir -p "$R$dst"; else mkdir -p "$(dirname "$R$dst")"; touch "$R$dst"; fi
  m --bind "$src" "$R$dst"
  if [ "$mode" = ro ]; then m -o remount,bind,ro "$R$dst"; fi
done < "$MOUNTS"
if [ "$RO_ROOT" = true ]; then m -o remount,ro "$R"; fi
exec chroot "$R" /usr/bin/env --chdir=/opt/vmgpu "$@"
`;

function agentContainer(spec: V1PodSpec): V1Container {
  const c = spec.containers.find((x) => x.name === 'agent') ?? spec.containers[0];
  if (!c) throw new Error('the rendered DaemonSet has no containers');
  return c;
}

/** The container's env with fieldRefs resolved against the Pod, as the kubelet does. */
function resolveEnv(c: V1Container, pod: V1Pod): Record<string, string> {
  const fields: Record<string, string | undefined> = { 'spec.nodeName': pod.spec?.nodeName, 'metadata.namespace': pod.metadata?.namespace, 'metadata.name': pod.metadata?.name, 'metadata.uid': pod.metadata?.uid, 'spec.serviceAccountName': pod.spec?.serviceAccountName };
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) out[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) {
      const v = fields[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`env ${e.name}: fieldRef ${e.valueFrom.fieldRef.fieldPath} is not one the runner resolves (${Object.keys(fields).join(', ')})`);
      out[e.name] = v;
    } else throw new Error(`env ${e.name}: only value and fieldRef are supported by the chart-agent runner, got ${JSON.stringify(e.valueFrom)}`);
  }
  return out;
}

/** Writes a ConfigMap volume the way the kubelet does: files are links into ..data, itself a link to a versioned directory. */
function writeConfigMapVolume(dir: string, data: Record<string, string>): void {
  mkdirSync(join(dir, '..v1'), { recursive: true });
  for (const [k, v] of Object.entries(data)) writeFileSync(join(dir, '..v1', k), v);
  symlinkSync('..v1', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const k of Object.keys(data)) symlinkSync(join('..data', k), join(dir, k));
}

function volumeSource(v: V1Volume, o: ChartAgentOptions): string {
  if (v.hostPath) {
    const src = o.hostPath(v.hostPath.path);
    const type = v.hostPath.type ?? '';
    if (type === 'DirectoryOrCreate') mkdirSync(src, { recursive: true });
    else if (type === 'Directory' && !(existsSync(src) && statSync(src).isDirectory())) throw new Error(`hostPath ${v.hostPath.path} (volume ${v.name}, type Directory) maps to ${src}, which is not a directory: the kubelet would refuse to start the pod`);
    return src;
  }
  const dir = join(o.dir, 'volumes', v.name);
  mkdirSync(dir, { recursive: true });
  if (v.configMap) {
    const cm = o.configMaps.find((c) => c.metadata?.name === v.configMap?.name);
    if (!cm) throw new Error(`volume ${v.name}: ConfigMap ${v.configMap.name} was not rendered`);
    writeConfigMapVolume(dir, cm.data ?? {});
  } else if (!v.emptyDir) throw new Error(`volume ${v.name}: only hostPath, configMap and emptyDir volumes are supported by the chart-agent runner`);
  return dir;
}

/** The stand-in Pod: the DaemonSet's pod template on this node, with a busybox `sleep` as its only container. */
export function standInPod(ds: V1DaemonSet, nodeName: string, image: string): V1Pod {
  const t = ds.spec!.template;
  const c = agentContainer(t.spec!);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `${ds.metadata!.name}-${nodeName}`.slice(0, 63), namespace: ds.metadata!.namespace, labels: t.metadata?.labels },
    spec: {
      nodeName,
      serviceAccountName: t.spec!.serviceAccountName,
      automountServiceAccountToken: false,
      priorityClassName: t.spec!.priorityClassName,
      tolerations: t.spec!.tolerations,
      affinity: t.spec!.affinity,
      nodeSelector: t.spec!.nodeSelector,
      hostNetwork: true, // the node has no pod network; the stand-in does nothing on it
      terminationGracePeriodSeconds: 1,
      containers: [{ name: c.name, image, imagePullPolicy: 'Never', command: ['sleep', '2147483647'], resources: c.resources }],
    },
  };
}

/** The container's volumeMounts as bind mounts, plus the service-account volume the kubelet adds, the image's files and the declared extra mounts. */
function containerMounts(spec: V1PodSpec, c: V1Container, o: ChartAgentOptions, sa: { token: string; namespace: string }): Mount[] {
  const mounts: Mount[] = [];
  const byName = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const vm of c.volumeMounts ?? []) {
    const v = byName.get(vm.name);
    if (!v) throw new Error(`volumeMount ${vm.name} has no volume`);
    mounts.push({ source: volumeSource(v, o), target: vm.mountPath, readOnly: Boolean(vm.readOnly) });
  }
  if (spec.automountServiceAccountToken !== false) {
    const dir = join(o.dir, 'volumes', 'kube-api-access');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), sa.token, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.crt'), o.apiServer.caPem);
    writeFileSync(join(dir, 'namespace'), sa.namespace);
    mounts.push({ source: dir, target: SA_DIR, readOnly: true });
  }
  const image: [string, string][] = [
    [resolve(o.bundle, '..'), '/opt/vmgpu/dist/bundle'],
    [join(repo, 'proto'), '/opt/vmgpu/proto'],
    [join(repo, 'package.json'), '/opt/vmgpu/package.json'],
  ];
  for (const [source, target] of image) mounts.push({ source, target, readOnly: true });
  for (const m of o.substitute?.mounts ?? []) mounts.push({ source: m.source, target: m.mountPath, readOnly: Boolean(m.readOnly) });
  return mounts;
}

/** command + args, with each declared substitution applied; a flag the chart no longer renders is an error. */
function substitutedArgs(c: V1Container, subs: Record<string, string>): string[] {
  const args = [...(c.command ?? []), ...(c.args ?? [])];
  for (const [from, to] of Object.entries(subs)) {
    const i = args.indexOf(from);
    if (i < 0) throw new Error(`substitution ${from} -> ${to}: the chart no longer renders ${from} (args: ${args.join(' ')})`);
    args[i] = to;
  }
  return args;
}

/** The first process named `comm` below `pid` (children files of /proc), or 0. */
function descendant(pid: number, comm: string): number {
  if (!pid) return 0;
  let kids: number[];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return 0;
  }
  for (const k of kids) {
    try {
      if (readFileSync(`/proc/${k}/comm`, 'utf8').trim() === comm) return k;
    } catch {
      continue;
    }
    const d = descendant(k, comm);
    if (d) return d;
  }
  return 0;
}

export async function runChartAgent(o: ChartAgentOptions & { standInImage: string }): Promise<ChartAgent> {
  const spec = o.daemonSet.spec!.template.spec!;
  const c = agentContainer(spec);
  const core = o.admin.makeApiClient(CoreV1Api);
  const ns = o.daemonSet.metadata!.namespace!;
  const pod = await core.createNamespacedPod({ namespace: ns, body: standInPod(o.daemonSet, o.nodeName, o.standInImage) });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns,
    name: spec.serviceAccountName!,
    body: { spec: { audiences: [], expirationSeconds: 3607, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! } } },
  });

  const mounts = containerMounts(spec, c, o, { token: tr.status!.token, namespace: ns });
  const args = substitutedArgs(c, o.substitute?.args ?? {});
  const env = {
    ...imageRuntimeEnv(),
    HOSTNAME: pod.metadata!.name!,
    KUBERNETES_SERVICE_HOST: o.apiServer.host,
    KUBERNETES_SERVICE_PORT: String(o.apiServer.port),
    KUBERNETES_SERVICE_PORT_HTTPS: String(o.apiServer.port),
    ...resolveEnv(c, pod),
  };

  const sc = c.securityContext ?? {};
  if (sc.runAsUser !== undefined && sc.runAsUser !== 0) throw new Error(`securityContext.runAsUser ${sc.runAsUser}: the runner runs the agent as root only`);
  const root = join(o.dir, 'root');
  mkdirSync(root, { recursive: true });
  const mountsFile = join(o.dir, 'mounts.tsv');
  writeFileSync(mountsFile, mounts.map((m) => `${m.source}\t${m.target}\t${m.readOnly ? 'ro' : 'rw'}\n`).join(''));
  const unshare = ['--mount', '--propagation', 'private', '--fork', '--kill-child=SIGKILL', ...(spec.hostPID ? [] : ['--pid']), ...(spec.hostIPC ? [] : ['--ipc'])];
  const argv = [...unshare, '--', 'sh', '-c', ROOT_SETUP, 'vmgpu-chart-agent', root, mountsFile, String(Boolean(sc.readOnlyRootFilesystem)), 'node', '/opt/vmgpu/dist/bundle/vmgpu.mjs', ...args];
  const proc = launch(o.dir, 'agent', 'unshare', argv, { env });
  const port = (c.ports ?? []).find((p) => p.name === c.readinessProbe?.httpGet?.port)?.containerPort ?? c.readinessProbe?.httpGet?.port;
  return {
    pod,
    proc,
    args,
    env,
    agentPid: () => descendant(proc.child.pid ?? 0, 'node'),
    ready: (timeoutMs = 60_000) => waitReady(proc, `readinessProbe GET ${c.readinessProbe?.httpGet?.path} on port ${port}`, timeoutMs, () => get(`http://127.0.0.1:${port}${c.readinessProbe?.httpGet?.path ?? '/readyz'}`), `unshare ${argv.join(' ')}`),
    live: (timeoutMs = 60_000) => waitReady(proc, `livenessProbe GET ${c.livenessProbe?.httpGet?.path} on port ${port}`, timeoutMs, () => get(`http://127.0.0.1:${port}${c.livenessProbe?.httpGet?.path ?? '/healthz'}`), `unshare ${argv.join(' ')}`),
    stop: async () => {
      await stopProc(proc, (spec.terminationGracePeriodSeconds ?? 30) * 1000);
      await core.deleteNamespacedPod({ namespace: ns, name: pod.metadata!.name!, gracePeriodSeconds: 0 }).catch(() => {});
    },
  };
}
