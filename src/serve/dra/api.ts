/**
 * The resource.k8s.io/v1 objects the DRA driver reads and writes, through
 * client-node's CustomObjectsApi: the request and response bodies stay plain
 * JSON, so fields newer than the library's models (compatibilityGroups,
 * allowMultipleAllocations, ...) are neither dropped on write nor on read.
 */
import { DRIVER_NAME } from './names.js';
import type { SliceObject } from './slices.js';
import { checkNamespace, checkObjectName, type Kube } from '../kube/kube.js';

const GROUP = 'resource.k8s.io';
const VERSION = 'v1';

/** What Prepare reads of a ResourceClaim. */
export interface ClaimJson {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string> };
  spec?: { devices?: { requests?: { name: string; exactly?: { deviceClassName?: string } }[] } };
  status?: {
    allocation?: {
      devices?: {
        results?: { request: string; driver: string; pool: string; device: string; shareID?: string }[];
        config?: { source: string; requests?: string[]; opaque?: { driver: string; parameters: unknown } }[];
      };
    };
    reservedFor?: { resource: string; name: string; uid: string }[];
  };
}

export interface DeviceClassJson {
  metadata: { name: string };
  spec?: { extendedResourceName?: string };
}

export class DraApiClient {
  constructor(
    private readonly kube: Kube,
    readonly nodeName: string,
  ) {
    checkObjectName(nodeName, 'node name');
  }

  /** Field selector of this node's slices of this driver. */
  get sliceSelector(): string {
    return `spec.nodeName=${this.nodeName},spec.driver=${DRIVER_NAME}`;
  }

  async listSlices(): Promise<{ items: SliceObject[] }> {
    return (await this.kube.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', fieldSelector: this.sliceSelector })) as { items: SliceObject[] };
  }

  async createSlice(body: SliceObject, dryRun = false): Promise<SliceObject> {
    return (await this.kube.custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', body, ...(dryRun ? { dryRun: 'All' } : {}) })) as SliceObject;
  }

  async replaceSlice(body: SliceObject): Promise<SliceObject> {
    return (await this.kube.custom.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', name: checkObjectName(body.metadata.name, 'slice name'), body })) as SliceObject;
  }

  async deleteSlice(name: string): Promise<void> {
    await this.kube.custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: 'resourceslices', name: checkObjectName(name, 'slice name') });
  }

  async getClaim(namespace: string, name: string): Promise<ClaimJson> {
    return (await this.kube.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: 'resourceclaims', namespace: checkNamespace(namespace, 'claim namespace'), name: checkObjectName(name, 'claim name') })) as ClaimJson;
  }

  async getDeviceClass(name: string): Promise<DeviceClassJson> {
    return (await this.kube.custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'deviceclasses', name: checkObjectName(name, 'device class name') })) as DeviceClassJson;
  }
}
