/**
 * What Allocate and GetPreferredAllocation answer, as pure functions over the
 * plugin's device table. The gRPC layer only maps their errors to status codes.
 */
import { devNodePath, devNodesFor } from './dev-nodes.js';
import { resourceEnvVar, type ResourceKind } from './naming.js';
import type { DeviceEntry } from './resources.js';
import { multiVgpuProblem } from '../../model/multi-vgpu.js';

/** NVIDIA's multi-vGPU rules for one VM's devices of a resource; passthrough GPUs have none. */
export function multiVgpuProblemOf(entries: readonly DeviceEntry[], driverVersion: string | null): string | null {
  const vgpus = entries.filter((e) => e.source !== 'passthrough');
  return multiVgpuProblem(vgpus.map((e) => ({ id: e.id, profile: e.profile, gpu: e.gpu })), driverVersion);
}

export interface DeviceSpecOut {
  container_path: string;
  host_path: string;
  permissions: string;
}

/** A ContainerAllocateResponse with the kubelet's field names. */
export interface ContainerAllocation {
  envs: Record<string, string>;
  mounts: never[];
  devices: DeviceSpecOut[];
  annotations: Record<string, string>;
  cdi_devices: never[];
}

export type AllocationErrorReason = 'unknown-device' | 'unhealthy-device' | 'empty-request' | 'duplicate-device' | 'multi-vgpu';

export class AllocationError extends Error {
  constructor(
    readonly reason: AllocationErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'AllocationError';
  }
}

export interface AllocationContext {
  resourceName: string;
  kind: ResourceKind;
  /** Device ID -> entry. */
  devices: ReadonlyMap<string, DeviceEntry>;
  /** Null when the device is healthy right now (checked at the call, not at the last sweep), else why not. */
  unhealthy: (id: string) => string | null;
  /** Add `/dev/iommu` (iommufd enabled in the config). */
  iommufd: boolean;
  /** The host driver version, for NVIDIA's multi-vGPU rules (src/model/multi-vgpu.ts). */
  driverVersion: string | null;
}

/** The device nodes a VM needs for these devices (dev-nodes.ts), as the kubelet's DeviceSpecs. */
export function deviceSpecsFor(devices: readonly DeviceEntry[], iommufd: boolean): DeviceSpecOut[] {
  return devNodesFor(devices, iommufd).map((n) => {
    const path = devNodePath(n);
    return { container_path: path, host_path: path, permissions: 'rwm' };
  });
}

/**
 * One container's answer: the KubeVirt env var holding exactly its devices
 * (comma-separated, in the kubelet's order) and the device nodes they need.
 * Throws AllocationError for an empty request, a repeated, unknown or unhealthy ID.
 */
export function allocateContainer(ctx: AllocationContext, ids: readonly string[]): ContainerAllocation {
  if (ids.length === 0) {
    throw new AllocationError('empty-request', `Allocate for ${ctx.resourceName}: a container request lists no device IDs`);
  }
  const entries: DeviceEntry[] = [];
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new AllocationError('duplicate-device', `Allocate for ${ctx.resourceName}: device ${JSON.stringify(id)} is listed twice in one container request`);
    seen.add(id);
    const entry = ctx.devices.get(id);
    if (!entry) {
      throw new AllocationError(
        'unknown-device',
        `Allocate for ${ctx.resourceName}: device ${JSON.stringify(id)} is not a device of this resource (it has ${ctx.devices.size} device${ctx.devices.size === 1 ? '' : 's'}); the kubelet's view is stale, it will resync from ListAndWatch`,
      );
    }
    const why = ctx.unhealthy(id);
    if (why !== null) {
      throw new AllocationError('unhealthy-device', `Allocate for ${ctx.resourceName}: device ${id} is Unhealthy (${why}); it cannot be given to a VM until it is Healthy again`);
    }
    entries.push(entry);
  }
  const problem = multiVgpuProblemOf(entries, ctx.driverVersion);
  if (problem !== null) {
    throw new AllocationError('multi-vgpu', `Allocate for ${ctx.resourceName}: the VM's guest driver would reject these ${entries.length} vGPUs together (${ids.join(', ')}): ${problem}`);
  }
  return {
    envs: { [resourceEnvVar(ctx.kind, ctx.resourceName)]: ids.join(',') },
    mounts: [],
    devices: deviceSpecsFor(entries, ctx.iommufd),
    annotations: {},
    cdi_devices: [],
  };
}

/**
 * GetPreferredAllocation for one container: keep every must-include device,
 * then fill the rest from one NUMA node when any can hold it (the node of the
 * must-include devices first, else the node that fits most tightly, so big
 * blocks stay free for big requests); otherwise spill over the fullest nodes.
 * Devices with unknown NUMA (-1) are used last.
 */
export function preferredAllocation(
  available: readonly string[],
  mustInclude: readonly string[],
  size: number,
  numaOf: (id: string) => number,
): string[] {
  const must = [...new Set(mustInclude)];
  if (must.length >= size) return must;
  const need = size - must.length;
  const mustSet = new Set(must);
  const rest = [...new Set(available)].filter((id) => !mustSet.has(id)).sort();
  const groups = new Map<number, string[]>();
  for (const id of rest) {
    const n = numaOf(id);
    const key = n >= 0 ? n : -1;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(id);
  }
  const mustNumas = new Set(must.map(numaOf).filter((n) => n >= 0));
  const known = [...groups.entries()].filter(([n]) => n >= 0);

  if (mustNumas.size === 1) {
    const [n] = [...mustNumas];
    const g = groups.get(n!);
    if (g && g.length >= need) return [...must, ...g.slice(0, need)];
  }
  if (mustNumas.size <= 1) {
    const fits = known.filter(([, g]) => g.length >= need).sort((a, b) => a[1].length - b[1].length || a[0] - b[0]);
    if (fits.length > 0) return [...must, ...fits[0]![1].slice(0, need)];
  }
  // Spill: must-include nodes first, then the fullest, unknown NUMA last.
  const order = [...groups.entries()].sort((a, b) => {
    const rank = (e: [number, string[]]) => (e[0] < 0 ? 2 : mustNumas.has(e[0]) ? 0 : 1);
    return rank(a) - rank(b) || b[1].length - a[1].length || a[0] - b[0];
  });
  const picked: string[] = [];
  for (const [, g] of order) {
    for (const id of g) {
      if (picked.length === need) break;
      picked.push(id);
    }
  }
  return [...must, ...picked];
}
