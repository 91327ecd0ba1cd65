/**
 * Which allocation model the API server can carry. A server without a
 * feature gate drops the gated fields from what it stores without an error,
 * and a slice stored without its counters would let the scheduler mix
 * profiles on a GPU. So before publishing, the driver asks the server to
 * create (dry run: nothing is stored) a slice that uses every field each
 * model needs, and reads back which fields survived.
 */
import type { DraAllocation } from '../../spec/dra-policy.js';
import type { DraApiClient } from './api.js';
import type { AllocationModel } from './devices.js';
import { DRIVER_NAME } from './names.js';
import { sliceName, type SliceObject } from './slices.js';

export interface ServerFeatures {
  /** KEP-4815 sharedCounters / consumesCounters (DRAPartitionableDevices). */
  partitionable: boolean;
  /** KEP-5075 allowMultipleAllocations with per-device capacity policies (DRAConsumableCapacity). */
  consumableCapacity: boolean;
  /** KEP-5963 compatibilityGroups (DRADeviceCompatibilityGroups). */
  compatibilityGroups: boolean;
}

function probeSlices(nodeName: string): SliceObject[] {
  const pool = { name: `${nodeName}-probe`, generation: 1, resourceSliceCount: 2 };
  return [
    { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceSlice', metadata: { name: sliceName(nodeName, 'probe-counters') }, spec: { driver: DRIVER_NAME, nodeName, pool, sharedCounters: [{ name: 'probe', counters: { c: { value: '2' } } }] } },
    {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceSlice',
      metadata: { name: sliceName(nodeName, 'probe-devices') },
      spec: {
        driver: DRIVER_NAME,
        nodeName,
        pool,
        devices: [
          {
            name: 'probe',
            attributes: {},
            allowMultipleAllocations: true,
            capacity: { n: { value: '2', requestPolicy: { default: '1', validValues: ['1'] } } },
            consumesCounters: [{ counterSet: 'probe', counters: { c: { value: '1' } }, compatibilityGroups: ['probe'] }],
          },
        ],
      },
    },
  ];
}

export async function probeFeatures(api: DraApiClient): Promise<ServerFeatures> {
  const [counters, devices] = probeSlices(api.nodeName);
  const c = await api.createSlice(counters!, true);
  const d = (await api.createSlice(devices!, true)).spec.devices?.[0];
  const consumes = d?.consumesCounters?.[0];
  return {
    partitionable: (c.spec.sharedCounters?.length ?? 0) > 0 && consumes !== undefined,
    consumableCapacity: d?.allowMultipleAllocations === true && d.capacity?.n?.requestPolicy !== undefined,
    compatibilityGroups: (consumes?.compatibilityGroups?.length ?? 0) > 0,
  };
}

/** The model to publish: the policy's choice when the server carries it, else the safest one it does. */
export function chooseModel(wanted: DraAllocation, f: ServerFeatures): { model: AllocationModel; note: string | null } {
  const can: Record<AllocationModel, boolean> = {
    'compatibility-groups': f.partitionable && f.compatibilityGroups,
    shared: f.partitionable && f.consumableCapacity,
    pinned: true,
  };
  if (wanted !== 'auto') {
    if (can[wanted]) return { model: wanted, note: null };
    const fallback = can.shared ? 'shared' : 'pinned';
    return { model: fallback, note: `allocation ${wanted} needs API server features this cluster does not keep (${JSON.stringify(f)}); publishing the ${fallback} model instead` };
  }
  if (can['compatibility-groups']) return { model: 'compatibility-groups', note: null };
  if (can.shared) return { model: 'shared', note: null };
  return { model: 'pinned', note: 'the API server keeps neither partitionable devices nor consumable capacity: each GPU offers one profile (the policy\'s first) and no passthrough next to it' };
}
