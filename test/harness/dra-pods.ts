// What the DRA tests create on the test node: ResourceClaims (through the admin's API access, as
// plain resource.k8s.io/v1 JSON) and probe pods that use them, either through a claim
// (spec.resourceClaims, KubeVirt's DRA path) or through an extended resource (KEP-5004, the
// device-plugin path). A probe pod writes its environment (from /proc/1/environ), its
// /dev/vfio nodes and the files it is asked for to a hostPath directory, then sleeps.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CustomObjectsApi, type CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { probeResult } from './node-pods.js';

export interface ClaimSpec {
  name: string;
  namespace: string;
  /** Device class and count of the one request, named `gpu`. */
  deviceClassName: string;
  count?: number;
  /** A CEL selector on the device, e.g. "device.attributes['gpu.vmgpu.io'].framebufferMiB >= 12288". */
  selector?: string;
  /** Opaque config for gpu.vmgpu.io (the VgpuConfig parameters). */
  config?: Record<string, unknown>;
}

function claimBody(c: ClaimSpec): object {
  return {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaim',
    metadata: { name: c.name, namespace: c.namespace },
    spec: {
      devices: {
        requests: [{ name: 'gpu', exactly: { deviceClassName: c.deviceClassName, allocationMode: 'ExactCount', count: c.count ?? 1, ...(c.selector ? { selectors: [{ cel: { expression: c.selector } }] } : {}) } }],
        ...(c.config ? { config: [{ requests: ['gpu'], opaque: { driver: 'gpu.vmgpu.io', parameters: { apiVersion: 'gpu.vmgpu.io/v1alpha1', kind: 'VgpuConfig', ...c.config } } }] } : {}),
      },
    },
  };
}

export class ResourceApi {
  private readonly custom: CustomObjectsApi;
  constructor(kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }
  createClaim(c: ClaimSpec): Promise<unknown> {
    return this.custom.createNamespacedCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceclaims', namespace: c.namespace, body: claimBody(c) });
  }
  async claim(namespace: string, name: string): Promise<ClaimObject | null> {
    return (await this.custom.getNamespacedCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceclaims', namespace, name }).catch(() => null)) as ClaimObject | null;
  }
  async claims(namespace: string): Promise<ClaimObject[]> {
    return ((await this.custom.listNamespacedCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceclaims', namespace })) as { items: ClaimObject[] }).items;
  }
  deleteClaim(namespace: string, name: string): Promise<unknown> {
    return this.custom.deleteNamespacedCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceclaims', namespace, name }).catch(() => null);
  }
  async slices(nodeName: string): Promise<SliceView[]> {
    const list = (await this.custom.listClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceslices', fieldSelector: `spec.nodeName=${nodeName},spec.driver=gpu.vmgpu.io` })) as { items: SliceView[] };
    return list.items;
  }
  createClass(body: object): Promise<unknown> {
    return this.custom.createClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'deviceclasses', body });
  }
}

export interface ClaimObject {
  metadata: { name: string; uid: string; annotations?: Record<string, string> };
  status?: { allocation?: { devices?: { results?: { request: string; device: string; pool: string; shareID?: string }[] } }; reservedFor?: unknown[] };
}

export interface SliceView {
  metadata: { name: string; uid?: string };
  spec: { pool: { generation: number; resourceSliceCount: number }; devices?: { name: string; attributes: Record<string, { string?: string; int?: number; bool?: boolean }>; taints?: unknown[] }[]; sharedCounters?: unknown[] };
}

/** The devices of the node's complete pool (every slice at the highest generation). */
export async function publishedDevices(api: ResourceApi, nodeName: string): Promise<NonNullable<SliceView['spec']['devices']> | null> {
  const slices = await api.slices(nodeName);
  if (slices.length === 0) return null;
  const gen = Math.max(...slices.map((s) => s.spec.pool.generation));
  const current = slices.filter((s) => s.spec.pool.generation === gen);
  if (current.length !== current[0]!.spec.pool.resourceSliceCount) return null;
  return current.flatMap((s) => s.spec.devices ?? []);
}

export interface DraProbeOptions {
  name: string;
  namespace: string;
  image: string;
  outDir: string;
  /** Use these claims (pod claim name -> ResourceClaim name) in the container. */
  claims?: Record<string, string>;
  /** Extended resources in the container's limits, e.g. { 'nvidia.com/L40S-12Q': '1' }. */
  limits?: Record<string, string>;
  /** Files to copy out of the container (copied to outDir/<basename>). */
  files?: string[];
}

export function draProbePod(o: DraProbeOptions): V1Pod {
  const script = [
    "tr '\\0' '\\n' < /proc/1/environ > /out/environ",
    "find /dev/vfio /dev/iommu -exec stat -c '%n %F %t:%T' {} + > /out/devices 2>&1",
    ...(o.files ?? []).map((f) => `cp ${f} /out/ 2>>/out/errors`),
    'touch /out/done',
    'exec sleep 3600',
  ].join('; ');
  const claims = Object.entries(o.claims ?? {});
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, labels: { 'kubevirt.io': 'virt-launcher' } },
    spec: {
      hostNetwork: true,
      automountServiceAccountToken: false,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      ...(claims.length ? { resourceClaims: claims.map(([name, resourceClaimName]) => ({ name, resourceClaimName })) } : {}),
      containers: [
        {
          name: 'compute',
          image: o.image,
          imagePullPolicy: 'Never',
          command: ['sh', '-c', script],
          resources: { ...(o.limits ? { limits: o.limits, requests: o.limits } : {}), ...(claims.length ? { claims: claims.map(([name]) => ({ name })) } : {}) },
          volumeMounts: [{ name: 'out', mountPath: '/out' }],
        },
      ],
      volumes: [{ name: 'out', hostPath: { path: resolve(o.outDir), type: 'DirectoryOrCreate' } }],
    },
  };
}

export interface DraProbeResult {
  env: Record<string, string>;
  devices: string[];
  file(name: string): string;
}

/** Waits until the probe has written its files; fails with the pod's status and its events' reasons otherwise. */
export async function draProbeResult(core: CoreV1Api, pod: V1Pod, outDir: string, timeoutMs = 90_000): Promise<DraProbeResult> {
  const res = await probeResult(core, pod, outDir, timeoutMs).catch(async (e: Error) => {
    throw new Error(`${e.message}; ${await podProblem(core, pod.metadata!.namespace!, pod.metadata!.name!)}`);
  });
  return { ...res, file: (name) => readFileSync(join(outDir, name), 'utf8') };
}

/** The pod's phase, conditions and the messages of its events: what the kubelet and the scheduler said. */
export async function podProblem(core: CoreV1Api, namespace: string, name: string): Promise<string> {
  const p = await core.readNamespacedPod({ namespace, name }).catch((e: Error) => e);
  const events = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` }).catch(() => ({ items: [] }));
  const status = p instanceof Error ? p.message : JSON.stringify({ phase: p.status?.phase, conditions: p.status?.conditions?.map((c) => `${c.type}=${c.status} ${c.message ?? ''}`) });
  return `${status}; events: ${events.items.map((e) => `${e.reason}: ${e.message}`).join(' | ')}`;
}
