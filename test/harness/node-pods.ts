// Pods on the test node and the kubelet's pod-resources API, as the end-to-end tests use them.
// Pods are hostNetwork busybox pods (the node has no pod network) that write what they see to
// a hostPath directory the test reads: /proc/1/environ (busybox sh drops variables whose name
// contains `-` from `env`, so the environment is read from the kernel) and the device nodes.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { sleep } from './procs.js';

export interface ProbePodOptions {
  name: string;
  namespace: string;
  image: string;
  /** Host directory the pod writes into (mounted at /out). */
  outDir: string;
  /** Container limits, e.g. { 'nvidia.com/L40S-12Q': '1' }. */
  limits?: Record<string, string>;
  /** Shaped like KubeVirt's virt-launcher pod: container `compute`, the kubevirt.io labels. */
  virtLauncher?: boolean;
}

// What a probe pod records, then it sleeps until deleted.
const PROBE_SCRIPT = [
  "tr '\\0' '\\n' < /proc/1/environ > /out/environ",
  "find /dev/vfio -exec stat -c '%n %F %t:%T' {} + > /out/devices 2>&1",
  'touch /out/done',
  'exec sleep 3600',
].join('; ');

export function probePod(o: ProbePodOptions): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, labels: o.virtLauncher ? { 'kubevirt.io': 'virt-launcher', 'vm.kubevirt.io/name': o.name } : { app: 'vmgpu-probe' } },
    spec: {
      hostNetwork: true,
      automountServiceAccountToken: false,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: o.virtLauncher ? 'compute' : 'probe',
          image: o.image,
          imagePullPolicy: 'Never',
          command: ['sh', '-c', PROBE_SCRIPT],
          resources: o.limits ? { limits: o.limits, requests: o.limits } : {},
          volumeMounts: [{ name: 'out', mountPath: '/out' }],
        },
      ],
      volumes: [{ name: 'out', hostPath: { path: resolve(o.outDir), type: 'DirectoryOrCreate' } }],
    },
  };
}

export interface ProbeResult {
  env: Record<string, string>;
  /** `find /dev/vfio | stat` lines: path, type, major:minor (hex). */
  devices: string[];
}

/** Waits until the probe pod has written its files; fails with the pod's status otherwise. */
export async function probeResult(core: CoreV1Api, pod: V1Pod, outDir: string, timeoutMs = 60_000): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(join(outDir, 'done'))) {
    if (Date.now() > deadline) {
      const cur = await core.readNamespacedPod({ namespace: pod.metadata!.namespace!, name: pod.metadata!.name! }).catch((e: Error) => e);
      throw new Error(`pod ${pod.metadata!.name} did not write ${outDir}/done within ${timeoutMs} ms; its status: ${JSON.stringify(cur instanceof Error ? cur.message : cur.status)}`);
    }
    await sleep(100);
  }
  const env = Object.fromEntries(
    readFileSync(join(outDir, 'environ'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { env, devices: readFileSync(join(outDir, 'devices'), 'utf8').trim().split('\n') };
}

/** Deletes a pod and waits until the kubelet has removed it (its devices are then free). */
export async function deletePodAndWait(core: CoreV1Api, namespace: string, name: string, timeoutMs = 60_000): Promise<void> {
  await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }).catch(() => {});
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const still = await core.readNamespacedPod({ namespace, name }).then(
      () => true,
      () => false,
    );
    if (!still) return;
    if (Date.now() > deadline) throw new Error(`pod ${namespace}/${name} still exists ${timeoutMs} ms after deletion`);
    await sleep(100);
  }
}

// ---- the kubelet's pod-resources API (v1), as a test reads it -------------------------------

export interface ContainerDevices {
  resource_name: string;
  device_ids: string[];
}
interface PodResources {
  name: string;
  namespace: string;
  containers: { name: string; devices: ContainerDevices[] }[];
}
type Unary<Res> = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;

let lister: grpc.ServiceClientConstructor | undefined;

export class PodResourcesReader {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    if (!lister) {
      const file = resolve(import.meta.dirname, '..', '..', 'proto', 'podresources', 'v1', 'api.proto');
      const def = protoLoader.loadSync(file, { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true });
      lister = (grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: grpc.ServiceClientConstructor } }).v1.PodResourcesLister;
    }
    this.client = new lister(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<Res>(method: string): Promise<Res> {
    const fn = (this.client as unknown as Record<string, Unary<Res>>)[method]!.bind(this.client);
    return new Promise((res, rej) => fn({}, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (err, r) => (err ? rej(err) : res(r!))));
  }

  /** Devices the kubelet can hand out, by resource (GetAllocatableResources). */
  async allocatable(): Promise<Record<string, string[]>> {
    const r = await this.call<{ devices: ContainerDevices[] }>('GetAllocatableResources');
    const out: Record<string, string[]> = {};
    for (const d of r.devices) (out[d.resource_name] ??= []).push(...d.device_ids);
    for (const ids of Object.values(out)) ids.sort();
    return out;
  }

  /** Devices assigned to pods: `namespace/pod/container` -> devices (List). */
  async assignments(): Promise<Record<string, ContainerDevices[]>> {
    const r = await this.call<{ pod_resources: PodResources[] }>('List');
    const out: Record<string, ContainerDevices[]> = {};
    for (const p of r.pod_resources) for (const c of p.containers) if (c.devices.length) out[`${p.namespace}/${p.name}/${c.name}`] = c.devices;
    return out;
  }

  close(): void {
    this.client.close();
  }
}
