/**
 * GetPreferredAllocation with NVIDIA's multi-vGPU rules and the GPUs'
 * topology: a VM's vGPUs on different physical GPUs where the rules demand
 * it (and first in any case: two vGPUs on one time-sliced GPU share its
 * engines), GPUs of one NVLink island when the topology is known, then one
 * NUMA node (preferredAllocation). Never a set Allocate would refuse: when no
 * allowed set exists, only the must-include devices are returned and the
 * kubelet's own choice meets Allocate's error, which says why.
 */
import { multiVgpuPolicy } from '../../model/multi-vgpu.js';
import { multiVgpuProblemOf, preferredAllocation } from './allocate.js';
import type { DeviceEntry } from './resources.js';

export interface PreferredRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
}

/** The preferred device IDs for one container of a resource with these devices. */
export function preferredDevices(devices: ReadonlyMap<string, DeviceEntry>, driverVersion: string | null, req: PreferredRequest): string[] {
  const must = [...new Set(req.mustInclude)];
  const known = (id: string) => devices.has(id);
  const available = [...new Set(req.available)].filter(known);
  const entries = (ids: readonly string[]) => ids.map((id) => devices.get(id)).filter((e): e is DeviceEntry => e !== undefined);
  const allowed = (ids: readonly string[]) => multiVgpuProblemOf(entries(ids), driverVersion) === null;
  if (req.size <= must.length || req.size <= 1) return pick(devices, available, must, req.size);
  if (!allowed(must)) return must;

  const first = entries(must.length > 0 ? must : available).find((e) => e.source !== 'passthrough');
  const policy = first ? multiVgpuPolicy(first.profile, driverVersion) : null;
  if (policy && !policy.ok) return must;

  // One device per physical GPU, on GPUs the must-include devices do not use.
  const mustGpus = new Set(entries(must).map((e) => e.gpu));
  const perGpu = new Map<string, string>();
  for (const id of [...available].sort()) {
    const gpu = devices.get(id)!.gpu;
    if (!mustGpus.has(gpu) && !perGpu.has(gpu) && !must.includes(id)) perGpu.set(gpu, id);
  }
  const spread = pick(devices, [...must, ...perGpu.values()], must, req.size);
  if (spread.length === req.size && allowed(spread)) return spread;
  if (policy && !policy.sameGpu) return allowed(spread) ? spread : must;
  const packed = pick(devices, available, must, req.size);
  return allowed(packed) ? packed : must;
}

/**
 * Must-include devices plus the rest from one NVLink island when one can hold
 * them (the island of the must-include devices first, else the one that fits
 * most tightly), else from anywhere; NUMA locality decides within. A single
 * device comes from outside the islands when it can.
 */
function pick(devices: ReadonlyMap<string, DeviceEntry>, available: readonly string[], must: readonly string[], size: number): string[] {
  const numaOf = (id: string) => devices.get(id)?.numaNode ?? -1;
  const need = size - must.length;
  if (need <= 0) return preferredAllocation(available, must, size, numaOf);
  const islandOf = (id: string) => devices.get(id)?.nvlinkIsland ?? null;
  const mustIslands = new Set(must.map(islandOf));
  const rest = available.filter((id) => !must.includes(id));
  const islands = new Map<string, string[]>();
  for (const id of rest) {
    const island = islandOf(id);
    if (island !== null) islands.set(island, [...(islands.get(island) ?? []), id]);
  }
  // A one-device request with nothing to join takes a GPU outside every island when there is one: islands stay whole for multi-GPU VMs.
  const loners = rest.filter((id) => islandOf(id) === null);
  if (need === 1 && must.length === 0 && loners.length > 0) return preferredAllocation(loners, must, size, numaOf);
  const fitting = [...islands.entries()]
    .filter(([island, ids]) => ids.length >= need && (must.length === 0 || (mustIslands.size === 1 && mustIslands.has(island))))
    .sort((a, b) => a[1].length - b[1].length || a[0].localeCompare(b[0]));
  const island = fitting[0];
  return preferredAllocation(island ? [...must, ...island[1]] : available, must, size, numaOf);
}
