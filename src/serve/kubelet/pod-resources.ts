/**
 * The kubelet's pod-resources API (v1 List): which devices of which resource
 * are assigned to which pod. The agent turns it into the planner's InUse map
 * ("pod NAMESPACE/NAME") so a config change never takes a VF, mdev or GPU
 * away from a running VM.
 */
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Inventory } from '../../inventory/types.js';
import { findProtoFile } from './proto-file.js';

export const DEFAULT_POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';

interface ContainerDevicesMsg {
  resource_name: string;
  device_ids: string[];
}
interface PodResourcesMsg {
  name: string;
  namespace: string;
  containers: { name: string; devices: ContainerDevicesMsg[] }[];
}
interface ListResponseMsg {
  pod_resources: PodResourcesMsg[];
}

type ListFn = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: ListResponseMsg) => void) => void;

/** One device assigned to a pod. */
export interface Assignment {
  resourceName: string;
  deviceId: string;
  pod: string;
}

export class PodResourcesError extends Error {
  override readonly name = 'PodResourcesError';
}

let ctor: grpc.ServiceClientConstructor | null = null;
function clientCtor(): grpc.ServiceClientConstructor {
  if (ctor) return ctor;
  const def = protoLoader.loadSync(findProtoFile('proto/podresources/v1/api.proto'), { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: grpc.ServiceClientConstructor } };
  ctor = pkg.v1.PodResourcesLister;
  return ctor;
}

/** Where the kubelet keeps its state when it is not /var/lib/kubelet, for the message that points there. */
const OTHER_KUBELET_ROOTS = 'k0s: /var/lib/k0s/kubelet, MicroK8s: /var/snap/microk8s/common/var/lib/kubelet, or the kubelet\'s --root-dir';

function missingSocket(path: string): string {
  return (
    `the kubelet's pod-resources socket ${path} does not exist, so vmgpu cannot tell which devices pods hold and changes nothing until it can. ` +
    `Is the kubelet running? If it keeps its state elsewhere (${OTHER_KUBELET_ROOTS}), point vmgpu at that kubelet's pod-resources/kubelet.sock ` +
    '(Helm: agent.hostPaths.podResources and agent.hostPaths.devicePlugins; flag: --pod-resources-socket). On a host with no kubelet at all, run the agent with --no-kubelet'
  );
}

export class PodResourcesClient {
  private client: grpc.Client | null = null;

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 3000,
  ) {}

  /** Whether the socket exists (the kubelet serves it). */
  available(): boolean {
    return existsSync(this.socketPath);
  }

  /** Every device assigned to a pod, for every resource. */
  async list(): Promise<Assignment[]> {
    if (!this.available()) throw new PodResourcesError(missingSocket(this.socketPath));
    this.client ??= new (clientCtor())(`unix://${this.socketPath}`, grpc.credentials.createInsecure());
    const list = (this.client as unknown as { List: ListFn }).List.bind(this.client);
    const res = await new Promise<ListResponseMsg>((resolve, reject) => {
      list({}, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, r) => {
        if (err) reject(new PodResourcesError(`pod-resources List on ${this.socketPath} failed: ${err.details || err.message}`));
        else resolve(r ?? { pod_resources: [] });
      });
    });
    const out: Assignment[] = [];
    for (const p of res.pod_resources ?? []) {
      for (const c of p.containers ?? []) {
        for (const d of c.devices ?? []) {
          for (const id of d.device_ids ?? []) out.push({ resourceName: d.resource_name, deviceId: id, pod: `${p.namespace}/${p.name}` });
        }
      }
    }
    return out;
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}

/**
 * The InUse map for the planner: devices of `ourResources` (or whose ID is
 * one of `ourDeviceIds`) assigned to pods. Keys are lower-case PCI addresses
 * or mdev UUIDs, values `pod NAMESPACE/NAME (resource)`.
 */
export function inUseFromAssignments(assignments: readonly Assignment[], ourResources: ReadonlySet<string>, ourDeviceIds: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of assignments) {
    const id = a.deviceId.toLowerCase();
    if (!ourResources.has(a.resourceName) && !ourDeviceIds.has(id)) continue;
    if (!out.has(id)) out.set(id, `pod ${a.pod} (${a.resourceName})`);
  }
  return out;
}

/**
 * What pods hold of this node's devices, asked of the kubelet now: devices of
 * `ourResources`, or whose ID is a GPU, VF or mdev of `inv`. Throws
 * PodResourcesError when the kubelet does not answer, a missing socket
 * included: without its answer nothing is known to be free.
 */
export async function podsHolding(client: PodResourcesClient, inv: Inventory | null, ourResources: ReadonlySet<string>): Promise<Map<string, string>> {
  const assignments = await client.list();
  const ids = new Set<string>();
  for (const g of inv?.gpus ?? []) {
    ids.add(g.pci.address);
    for (const v of g.vfs) ids.add(v.address);
    for (const p of g.mdevParents) for (const i of p.instances) ids.add(i.uuid);
  }
  return inUseFromAssignments(assignments, ourResources, ids);
}
