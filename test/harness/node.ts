// A real one-node Kubernetes cluster for end-to-end tests: the control plane of
// controlplane.ts plus kube-controller-manager, kube-scheduler, containerd (with CDI) and a
// kubelet, all at the pinned versions (test/tools/k8s/versions.json), isolated from the
// machine (node-isolation.ts): a private mount namespace, its own cgroup root, sockets and
// ports, dummy /dev/vfio devices, locally built images.
//
//   const node = await startNode();
//   after(() => node.stop());
//   // a device plugin registers at node.devicePluginDir; pods schedule onto node.name
//
// Teardown (stop(), an exit/signal hook, or a watchdog if this process is killed) ends every
// process by PID, mount namespace and cgroup, removes the cgroups and the directory; the
// machine's mounts and sysctls were never touched.
import { readFileSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './controlplane.js';
import { nodeTools, type NodeTools } from './k8s-tools.js';
import { checkPrerequisites, cleanupSync, createCgroupRoot, createMountNamespace, startCleanupWatchdog, type MountNamespace } from './node-isolation.js';
import { containerdConfig, kubeletConfig, LOOPBACK_CNI } from './node-config.js';
import { freePort, get, launch, logTail, sleep, stopProc, waitReady, type Proc } from './procs.js';

export interface NodeOptions {
  /** Node name (default vmgpu-node-<pid>-<n>). */
  nodeName?: string;
  controlPlane?: ControlPlaneOptions;
  /** How long to wait for the Node to be Ready and schedulable (default 90 s). */
  readyTimeoutMs?: number;
  /** Feature gates for every component (API server, scheduler, controller-manager, kubelet), e.g. { DRADeviceCompatibilityGroups: true }. */
  featureGates?: Record<string, boolean>;
  /** How many dummy VFIO group and cdev nodes to make (default 128; IOMMU groups of simulated VFs and mdevs count up). */
  vfioNodes?: number;
}

export interface NodeMemory {
  /** VmRSS in KiB per daemon, `shims` summed over every containerd-shim-runc-v2. */
  [process: string]: number;
}

export interface TestNode {
  cp: ControlPlane;
  name: string;
  /** The node's InternalIP: the machine's first non-loopback IPv4 address (the kubelet refuses loopback). */
  ip: string;
  dir: string;
  /** Host path of the namespace's /var/lib/kubelet, and of its device-plugins directory and pod-resources socket. */
  kubeletRoot: string;
  devicePluginDir: string;
  podResourcesSocket: string;
  /** Host path of the node's /dev/vfio (dummy character devices 1:3). */
  devVfioDir: string;
  cgroupRoot: string;
  tools: NodeTools;
  /** Image names pods use with imagePullPolicy: Never. */
  images: { busybox: string; pause: string };
  /** Milliseconds from start to a Ready, schedulable Node, and where they went. */
  startupMs: number;
  timings: Record<string, number>;
  pids(): Record<string, number>;
  memoryUsage(): NodeMemory;
  /** Stops the kubelet (SIGTERM) and starts it again; resolves once /healthz answers, with the times (Date.now()) of each step. */
  restartKubelet(): Promise<{ stoppedAt: number; startedAt: number; healthyAt: number }>;
  /** A command line that runs `cmd` in the node's mount namespace. */
  inNamespace(cmd: string[]): string[];
  stop(): Promise<void>;
}

let seq = 0;
const live = new Map<string, () => void>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const f of [...live.values()]) f();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const f of [...live.values()]) f();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function nodeIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('the test node cannot start: this machine has no non-loopback IPv4 address, and the kubelet refuses a loopback --node-ip');
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** PIDs of the processes in mount namespace `nsId` whose command is `comm`. */
function pidsInNamespace(nsId: string, comm: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readlinkSync(`/proc/${p}/ns/mnt`) === nsId && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === comm) out.push(Number(p));
    } catch {
      /* exited */
    }
  }
  return out;
}

/** What the start-up steps share: where things go and how a daemon is started. */
interface Start {
  dir: string;
  tools: NodeTools;
  ns: MountNamespace;
  /** Starts a daemon (in the node's mount namespace when `inNs`) and records it for teardown. */
  start(name: string, cmd: string[], inNs: boolean): Proc;
}

export async function startNode(opts: NodeOptions = {}): Promise<TestNode> {
  checkPrerequisites();
  const tools = nodeTools();
  installHooks();
  const id = `${process.pid}-${++seq}`;
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-node-'));
  const cgroupName = `vmgpu-node-${id}`;
  const watchdog = startCleanupWatchdog(dir, cgroupName);
  let nsId = '';
  let cp: ControlPlane | undefined;
  const procs: Proc[] = [];
  const recordPgids = (): void => writeFileSync(join(dir, 'pgids'), procs.filter((p) => !p.exited).map((p) => p.child.pid).join('\n') + '\n');
  const destroy = (): void => {
    cleanupSync(dir, nsId, cgroupName);
    watchdog.kill();
    live.delete(dir);
  };
  live.set(dir, destroy);
  try {
    const t0 = Date.now();
    const timings: Record<string, number> = {};
    const mark = (what: string): void => void (timings[what] = Date.now() - t0);
    // Privileged pods (the agent's DaemonSet is one) are refused unless allowed, as kubeadm does.
    const gates = gateFlag(opts.featureGates);
    const cpStarting = startControlPlane({ ...opts.controlPlane, apiServerArgs: ['--allow-privileged=true', ...gates, ...(opts.controlPlane?.apiServerArgs ?? [])] });
    cpStarting.catch(() => {}); // awaited below; a failure there is reported there
    createCgroupRoot(cgroupName);
    const ns = createMountNamespace(dir, opts.vfioNodes);
    nsId = ns.id;
    mark('namespace');
    const env = { PATH: `${tools.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: dir, TMPDIR: dir };
    const s: Start = {
      dir,
      tools,
      ns,
      start(name, cmd, inNs) {
        const argv = inNs ? ns.enter(cmd) : cmd;
        const p = launch(dir, name, argv[0]!, argv.slice(1), { env });
        procs.push(p);
        recordPgids();
        void p.exit.then(recordPgids);
        return p;
      },
    };
    const containerd = await startContainerd(s, mark);
    cp = await cpStarting;
    mark('controlPlane');
    const name = opts.nodeName ?? `vmgpu-node-${id}`;
    const ip = nodeIp();
    const kubelet = await kubeletStarter(s, cp, { name, ip, cgroupRoot: `/${cgroupName}`, containerdSocket: containerd.socket, featureGates: opts.featureGates ?? {} });
    const kubeletProc = kubelet.start();
    const controllers = await startControllers(s, cp, gates);
    await Promise.all([kubelet.healthy(kubeletProc).then(() => mark('kubelet')), ...controllers.ready.map((r) => r.then(mark))]);
    await waitNodeReady(cp, name, kubeletProc, opts.readyTimeoutMs ?? 90_000);
    mark('nodeReady');
    return nodeHandle({ cp, name, ip, dir, cgroupRoot: `/${cgroupName}`, tools, ns, startupMs: Date.now() - t0, timings, containerd: containerd.proc, kubelet, kubeletProc, controllers, destroy });
  } catch (e) {
    destroy();
    await cp?.stop();
    throw e;
  }
}

interface HandleParts {
  cp: ControlPlane;
  name: string;
  ip: string;
  dir: string;
  cgroupRoot: string;
  tools: NodeTools;
  ns: MountNamespace;
  startupMs: number;
  timings: Record<string, number>;
  containerd: Proc;
  kubelet: { start(): Proc; healthy(p: Proc): Promise<void> };
  kubeletProc: Proc;
  controllers: { scheduler: Proc; cm: Proc };
  destroy(): void;
}

function nodeHandle(h: HandleParts): TestNode {
  let kubeletProc = h.kubeletProc;
  let stopped: Promise<void> | undefined;
  const node: TestNode = {
    cp: h.cp,
    name: h.name,
    ip: h.ip,
    dir: h.dir,
    kubeletRoot: join(h.dir, 'kubelet-root'),
    devicePluginDir: join(h.dir, 'kubelet-root', 'device-plugins'),
    podResourcesSocket: join(h.dir, 'kubelet-root', 'pod-resources', 'kubelet.sock'),
    devVfioDir: join(h.dir, 'ns', 'dev-upper', 'vfio'),
    cgroupRoot: h.cgroupRoot,
    tools: h.tools,
    images: { busybox: h.tools.images.busybox.name, pause: h.tools.images.pause.name },
    startupMs: h.startupMs,
    timings: h.timings,
    pids: () => ({
      etcd: h.cp.pids.etcd,
      apiserver: h.cp.pids.apiserver,
      containerd: h.containerd.child.pid ?? 0,
      kubelet: kubeletProc.child.pid ?? 0,
      scheduler: h.controllers.scheduler.child.pid ?? 0,
      controllerManager: h.controllers.cm.child.pid ?? 0,
      nsHolder: h.ns.holderPid,
    }),
    memoryUsage() {
      const mem: NodeMemory = {};
      for (const [k, pid] of Object.entries(node.pids())) if (k !== 'nsHolder') mem[k] = rssKiB(pid);
      mem.shims = pidsInNamespace(h.ns.id, 'containerd-shim').reduce((sum, pid) => sum + rssKiB(pid), 0);
      return mem;
    },
    async restartKubelet() {
      await stopProc(kubeletProc, 10_000);
      const stoppedAt = Date.now();
      kubeletProc = h.kubelet.start();
      const startedAt = Date.now();
      await h.kubelet.healthy(kubeletProc);
      return { stoppedAt, startedAt, healthyAt: Date.now() };
    },
    inNamespace: (cmd) => h.ns.enter(cmd),
    stop() {
      stopped ??= (async () => {
        await Promise.all([stopProc(h.controllers.scheduler, 3000), stopProc(h.controllers.cm, 3000), stopProc(kubeletProc, 5000)]);
        await stopProc(h.containerd, 3000);
        h.destroy();
        await h.cp.stop();
      })();
      return stopped;
    },
  };
  return node;
}

/** containerd in the node's namespace, answering on its socket, with the two images imported. */
async function startContainerd(s: Start, mark: (what: string) => void): Promise<{ proc: Proc; socket: string }> {
  const { dir, tools, ns } = s;
  const socket = join(dir, 'containerd.sock');
  for (const d of ['cni/conf', 'cni/bin', 'cdi']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'cni', 'conf', '10-hostnet.conflist'), LOOPBACK_CNI);
  const cfg = containerdConfig({
    root: join(dir, 'containerd', 'root'),
    state: join(dir, 'containerd', 'state'),
    socket,
    runc: tools.runc,
    cniConfDir: join(dir, 'cni', 'conf'),
    cniBinDir: join(dir, 'cni', 'bin'),
    cdiSpecDir: join(dir, 'cdi'),
    sandboxImage: tools.images.pause.name,
  });
  writeFileSync(join(dir, 'containerd.toml'), cfg);
  const proc = s.start('containerd', [tools.containerd, '--config', join(dir, 'containerd.toml')], true);
  const ctr = (args: string[]): string => {
    const argv = ns.enter([tools.ctr, '-a', socket, '-n', 'k8s.io', ...args]);
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  };
  await waitFor('containerd answering on its socket', 30_000, proc, () => {
    try {
      ctr(['version']);
      return true;
    } catch {
      return false;
    }
  });
  mark('containerd');
  for (const img of [tools.images.pause, tools.images.busybox]) ctr(['images', 'import', img.tar]);
  mark('images');
  return { proc, socket };
}

/** The kubelet's configuration and command line; start() runs it in the node's namespace, healthy() waits for /healthz. */
/** `--feature-gates=A=true,B=false`, or nothing. */
function gateFlag(gates: Record<string, boolean> | undefined): string[] {
  const list = Object.entries(gates ?? {});
  return list.length ? [`--feature-gates=${list.map(([k, v]) => `${k}=${v}`).join(',')}`] : [];
}

async function kubeletStarter(s: Start, cp: ControlPlane, o: { name: string; ip: string; cgroupRoot: string; containerdSocket: string; featureGates: Record<string, boolean> }): Promise<{ start(): Proc; healthy(p: Proc): Promise<void> }> {
  const ports = { port: await freePort(), healthzPort: await freePort() };
  const config = join(s.dir, 'kubelet.json');
  writeFileSync(config, kubeletConfig({ cgroupRoot: o.cgroupRoot, containerdSocket: o.containerdSocket, clientCaFile: cp.caFile, featureGates: o.featureGates, ...ports }));
  const args = [s.tools.kubelet, '--config', config, '--kubeconfig', cp.nodeKubeConfig(o.name).kubeconfigPath, '--hostname-override', o.name, '--node-ip', o.ip, '--v=2'];
  return {
    start: () => s.start('kubelet', args, true),
    healthy: (p) => waitReady(p, 'answering /healthz', 30_000, () => get(`http://127.0.0.1:${ports.healthzPort}/healthz`), args.join(' ')),
  };
}

/** kube-scheduler and kube-controller-manager, on the machine's side (they only talk to the API server). */
async function startControllers(s: Start, cp: ControlPlane, gates: string[]): Promise<{ scheduler: Proc; cm: Proc; ready: Promise<string>[] }> {
  const schedPort = await freePort();
  const scheduler = s.start('kube-scheduler', [s.tools.kubeScheduler, '--kubeconfig', cp.clientKubeConfig('system:kube-scheduler').kubeconfigPath, '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${schedPort}`, ...gates], false);
  const cmPort = await freePort();
  const controllers = ['serviceaccount-controller', 'root-ca-certificate-publisher-controller', 'node-lifecycle-controller', 'taint-eviction-controller', 'resourceclaim-controller'];
  const cmArgs = [
    s.tools.kubeControllerManager,
    '--kubeconfig',
    cp.clientKubeConfig('system:kube-controller-manager').kubeconfigPath,
    '--use-service-account-credentials=true',
    `--root-ca-file=${cp.caFile}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${cmPort}`,
    `--controllers=${controllers.join(',')}`,
    ...gates,
  ];
  const cm = s.start('kube-controller-manager', cmArgs, false);
  const insecure = { rejectUnauthorized: false }; // self-signed serving certificates
  return {
    scheduler,
    cm,
    ready: [
      waitReady(scheduler, 'answering /readyz', 30_000, () => get(`https://127.0.0.1:${schedPort}/readyz`, insecure), 'kube-scheduler').then(() => 'scheduler'),
      waitReady(cm, 'answering /healthz', 30_000, () => get(`https://127.0.0.1:${cmPort}/healthz`, insecure), 'kube-controller-manager').then(() => 'controllerManager'),
    ],
  };
}

/** The Node Ready, without the node.kubernetes.io taints (node-lifecycle controller), and the default ServiceAccount (serviceaccount controller). */
async function waitNodeReady(cp: ControlPlane, name: string, kubelet: Proc, timeoutMs: number): Promise<void> {
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  await waitFor('the Node Ready, without the not-ready taint, and the default ServiceAccount', timeoutMs, kubelet, async () => {
    const n = await core.readNode({ name }).catch(() => null);
    const ready = n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    const tainted = n?.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/'));
    const sa = await core.readNamespacedServiceAccount({ namespace: 'default', name: 'default' }).catch(() => null);
    return Boolean(ready && !tainted && sa);
  });
}

/** Polls `ok` every 100 ms until it is true; fails early with the log tail when `p` exits. */
async function waitFor(what: string, timeoutMs: number, p: Proc, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ok()) return;
    if (p.exited) throw new Error(`${p.name} exited while waiting for ${what}; last output (${p.logFile}):\n${logTail(p)}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; logs in ${p.logFile}`);
    await sleep(100);
  }
}
