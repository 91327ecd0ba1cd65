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
    return await startIn();
  } catch (e) {
    destroy();
    await cp?.stop();
    throw e;
  }

  async function startIn(): Promise<TestNode> {
    const t0 = Date.now();
    const timings: Record<string, number> = {};
    const mark = (what: string): void => void (timings[what] = Date.now() - t0);
    const name = opts.nodeName ?? `vmgpu-node-${id}`;
    const ip = nodeIp();
    // Privileged pods (the agent's DaemonSet is one) are refused unless allowed, as kubeadm does.
    const cpStarting = startControlPlane({ ...opts.controlPlane, apiServerArgs: ['--allow-privileged=true', ...(opts.controlPlane?.apiServerArgs ?? [])] });
    cpStarting.catch(() => {}); // awaited below; a failure there is reported there
    createCgroupRoot(cgroupName);
    const ns: MountNamespace = createMountNamespace(dir);
    nsId = ns.id;
    mark('namespace');
    const env = { PATH: `${tools.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: dir, TMPDIR: dir };
    const start = (procName: string, cmd: string[], inNs: boolean): Proc => {
      const argv = inNs ? ns.enter(cmd) : cmd;
      const p = launch(dir, procName, argv[0]!, argv.slice(1), { env });
      procs.push(p);
      recordPgids();
      void p.exit.then(recordPgids);
      return p;
    };

    // containerd, and the two images it cannot pull.
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
    const containerd = start('containerd', [tools.containerd, '--config', join(dir, 'containerd.toml')], true);
    const ctr = (args: string[]): string => execFileSync(ns.enter([tools.ctr, '-a', socket, '-n', 'k8s.io', ...args])[0]!, ns.enter([tools.ctr, '-a', socket, '-n', 'k8s.io', ...args]).slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    await waitFor('containerd answering on its socket', 30_000, containerd, () => {
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

    cp = await cpStarting;
    mark('controlPlane');
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);

    // kubelet
    const kubeletPorts = { port: await freePort(), healthzPort: await freePort() };
    writeFileSync(join(dir, 'kubelet.json'), kubeletConfig({ cgroupRoot: `/${cgroupName}`, containerdSocket: socket, clientCaFile: cp.caFile, ...kubeletPorts }));
    const kubeletArgs = [tools.kubelet, '--config', join(dir, 'kubelet.json'), '--kubeconfig', cp.nodeKubeConfig(name).kubeconfigPath, '--hostname-override', name, '--node-ip', ip, '--v=2'];
    let kubelet = start('kubelet', kubeletArgs, true);
    const kubeletHealthz = (): Promise<void> => waitReady(kubelet, 'answering /healthz', 30_000, () => get(`http://127.0.0.1:${kubeletPorts.healthzPort}/healthz`), kubeletArgs.join(' '));

    // kube-scheduler and kube-controller-manager, on the machine's side (they only talk to the API server).
    const schedPort = await freePort();
    const scheduler = start('kube-scheduler', [tools.kubeScheduler, '--kubeconfig', cp.clientKubeConfig('system:kube-scheduler').kubeconfigPath, '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${schedPort}`], false);
    const cmPort = await freePort();
    const controllers = ['serviceaccount-controller', 'root-ca-certificate-publisher-controller', 'node-lifecycle-controller', 'taint-eviction-controller', 'resourceclaim-controller'];
    const cm = start(
      'kube-controller-manager',
      [tools.kubeControllerManager, '--kubeconfig', cp.clientKubeConfig('system:kube-controller-manager').kubeconfigPath, '--use-service-account-credentials=true', `--root-ca-file=${cp.caFile}`, '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${cmPort}`, `--controllers=${controllers.join(',')}`],
      false,
    );
    const insecure = { rejectUnauthorized: false };
    await Promise.all([
      kubeletHealthz().then(() => mark('kubelet')),
      waitReady(scheduler, 'answering /readyz', 30_000, () => get(`https://127.0.0.1:${schedPort}/readyz`, insecure), 'kube-scheduler').then(() => mark('scheduler')),
      waitReady(cm, 'answering /healthz', 30_000, () => get(`https://127.0.0.1:${cmPort}/healthz`, insecure), 'kube-controller-manager').then(() => mark('controllerManager')),
    ]);
    await waitFor('the Node Ready, without the not-ready taint, and the default ServiceAccount', opts.readyTimeoutMs ?? 90_000, kubelet, async () => {
      const n = await core.readNode({ name }).catch(() => null);
      const ready = n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      const tainted = n?.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/'));
      const sa = await core.readNamespacedServiceAccount({ namespace: 'default', name: 'default' }).catch(() => null);
      return Boolean(ready && !tainted && sa);
    });
    mark('nodeReady');

    let stopped: Promise<void> | undefined;
    const node: TestNode = {
      cp,
      name,
      ip,
      dir,
      kubeletRoot: join(dir, 'kubelet-root'),
      devicePluginDir: join(dir, 'kubelet-root', 'device-plugins'),
      podResourcesSocket: join(dir, 'kubelet-root', 'pod-resources', 'kubelet.sock'),
      devVfioDir: join(dir, 'ns', 'dev-upper', 'vfio'),
      cgroupRoot: `/${cgroupName}`,
      tools,
      images: { busybox: tools.images.busybox.name, pause: tools.images.pause.name },
      startupMs: Date.now() - t0,
      timings,
      pids: () => ({ etcd: cp!.pids.etcd, apiserver: cp!.pids.apiserver, containerd: containerd.child.pid ?? 0, kubelet: kubelet.child.pid ?? 0, scheduler: scheduler.child.pid ?? 0, controllerManager: cm.child.pid ?? 0, nsHolder: ns.holderPid }),
      memoryUsage() {
        const mem: NodeMemory = {};
        for (const [k, pid] of Object.entries(node.pids())) if (k !== 'nsHolder') mem[k] = rssKiB(pid);
        mem.shims = pidsInNamespace(ns.id, 'containerd-shim').reduce((s, pid) => s + rssKiB(pid), 0);
        return mem;
      },
      async restartKubelet() {
        await stopProc(kubelet, 10_000);
        const stoppedAt = Date.now();
        kubelet = start('kubelet', kubeletArgs, true);
        const startedAt = Date.now();
        await kubeletHealthz();
        return { stoppedAt, startedAt, healthyAt: Date.now() };
      },
      inNamespace: (cmd) => ns.enter(cmd),
      stop() {
        stopped ??= (async () => {
          await Promise.all([stopProc(scheduler, 3000), stopProc(cm, 3000), stopProc(kubelet, 5000)]);
          await stopProc(containerd, 3000);
          destroy();
          await cp!.stop();
        })();
        return stopped;
      },
    };
    return node;
  }
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
