/**
 * The pool cut into ResourceSlices as the API requires: counter sets in
 * slices of their own (at most 8 per slice), devices at most 64 per slice
 * (the limit when devices consume counters), every slice carrying the pool's
 * generation and slice count. Pure; publisher.ts writes them.
 */
import { DRIVER_NAME } from './names.js';
import type { CounterSetJson, DeviceJson, Pool } from './devices.js';

const MAX_COUNTER_SETS_PER_SLICE = 8;
export const MAX_DEVICES_PER_SLICE = 64;

export interface SliceSpec {
  driver: string;
  nodeName: string;
  pool: { name: string; generation: number; resourceSliceCount: number };
  sharedCounters?: CounterSetJson[];
  devices?: DeviceJson[];
}

export interface SliceObject {
  apiVersion: 'resource.k8s.io/v1';
  kind: 'ResourceSlice';
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec: SliceSpec;
}

function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** Stable slice names for a node: `<node>-gpu.vmgpu.io-counters-0`, `...-devices-0`. */
export function sliceName(nodeName: string, part: string): string {
  return `${nodeName.slice(0, 200)}-${DRIVER_NAME}-${part}`;
}

/**
 * The node's slices for `pool` at `generation`. An empty pool is still one
 * slice with no devices, so the scheduler sees the node's pool as complete
 * and empty instead of missing.
 */
export function slicesOf(nodeName: string, pool: Pool, generation: number): SliceObject[] {
  const parts: { part: string; spec: Pick<SliceSpec, 'sharedCounters' | 'devices'> }[] = [];
  chunks(pool.counterSets, MAX_COUNTER_SETS_PER_SLICE).forEach((c, i) => parts.push({ part: `counters-${i}`, spec: { sharedCounters: c } }));
  chunks(pool.devices, MAX_DEVICES_PER_SLICE).forEach((d, i) => parts.push({ part: `devices-${i}`, spec: { devices: d } }));
  if (parts.length === 0) parts.push({ part: 'devices-0', spec: {} });
  return parts.map(({ part, spec }) => ({
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceSlice',
    metadata: { name: sliceName(nodeName, part) },
    spec: { driver: DRIVER_NAME, nodeName, pool: { name: nodeName, generation, resourceSliceCount: parts.length }, ...spec },
  }));
}
