/**
 * The pool the driver publishes: per GPU a counter set and the devices that
 * consume it, in one of three allocation models (docs/dra.md "Allocation
 * models"). Every model keeps the same invariant, which is the driver's own
 * capacity rule: at any time a GPU holds vGPUs of one profile only (so one
 * size and one series, time-sliced or MIG-backed), at most that profile's
 * homogeneous instance count, or it is passed through whole. The scheduler can
 * therefore never allocate a combination Prepare must refuse.
 *
 * - `compatibility-groups`: one device per vGPU slot, consuming the GPU's
 *   framebuffer, vgpus (and migslices) counters, grouped by profile
 *   (KEP-5963): devices of different groups never share the counter set.
 * - `shared`: one device per GPU and profile that several claims may share
 *   (KEP-5075 allowMultipleAllocations), `vgpus` capacity = its instances,
 *   one share = one vGPU; every device consumes all of the GPU's counters,
 *   which an allow-multiple device is charged once, so one device per GPU is
 *   allocated at a time.
 * - `pinned`: no counters (API servers without partitionable devices): each
 *   GPU offers one profile, the policy's first, as slot devices, or only the
 *   whole GPU.
 */
import { ATTR_NUMA_NODE, ATTR_PCI_BUS_ID, ATTR_PCIE_ROOT, counterSetName, deviceName, profileKey } from './names.js';
import type { GpuOffer, ProfileOffer } from './offers.js';

export type AllocationModel = 'compatibility-groups' | 'shared' | 'pinned';

/** resource.k8s.io/v1 DeviceAttribute. */
export type Attribute = { string: string } | { int: number } | { bool: boolean };

export interface CounterSetJson {
  name: string;
  counters: Record<string, { value: string }>;
}

export interface CounterConsumptionJson {
  counterSet: string;
  counters: Record<string, { value: string }>;
  compatibilityGroups?: string[];
}

export interface DeviceJson {
  name: string;
  attributes: Record<string, Attribute>;
  capacity?: Record<string, { value: string; requestPolicy?: { default: string; validValues: string[] } }>;
  allowMultipleAllocations?: boolean;
  consumesCounters?: CounterConsumptionJson[];
  /** KEP-5055 device taints: an unhealthy GPU's devices take no new claims. */
  taints?: { key: string; effect: 'NoSchedule' | 'NoExecute' }[];
}

/** What a published device stands for, for Prepare and health. */
export interface DeviceInfo {
  name: string;
  gpu: string;
  /** null: the whole GPU. */
  profile: string | null;
  /** The slot (VF index on SR-IOV cards) of a slot device; null for shareable and whole devices. */
  slot: number | null;
}

export interface Pool {
  counterSets: CounterSetJson[];
  devices: DeviceJson[];
  info: Map<string, DeviceInfo>;
}

const qty = (n: number): { value: string } => ({ value: String(n) });

/** The GPU's counters: everything a whole-GPU device takes. */
function gpuCounters(o: GpuOffer): Record<string, { value: string }> {
  const c: Record<string, { value: string }> = { vgpus: qty(o.counters.vgpus) };
  if (o.counters.framebufferMiB > 0) c.framebuffer = { value: `${o.counters.framebufferMiB}Mi` };
  if (o.counters.migSlices !== null) c.migslices = qty(o.counters.migSlices);
  return c;
}

/** What one vGPU of `p` takes of the GPU's counters. */
function vgpuCounters(o: GpuOffer, p: ProfileOffer): Record<string, { value: string }> {
  const c: Record<string, { value: string }> = { vgpus: qty(1) };
  if (o.counters.framebufferMiB > 0) c.framebuffer = { value: `${p.framebufferMiB}Mi` };
  if (o.counters.migSlices !== null) c.migslices = qty(p.migSlices ?? 0);
  return c;
}

function baseAttributes(o: GpuOffer): Record<string, Attribute> {
  const a: Record<string, Attribute> = { gpu: { string: o.address }, gpuIndex: { int: o.index }, model: { string: o.model } };
  if (o.pcieRoot) a[ATTR_PCIE_ROOT] = { string: o.pcieRoot };
  if (o.numaNode !== null) a[ATTR_NUMA_NODE] = { int: o.numaNode };
  return a;
}

function vgpuAttributes(o: GpuOffer, p: ProfileOffer): Record<string, Attribute> {
  return {
    ...baseAttributes(o),
    kind: { string: 'vgpu' },
    profile: { string: p.profile },
    framework: { string: o.framework },
    series: { string: p.series },
    framebufferMiB: { int: p.framebufferMiB },
    migBacked: { bool: p.migBacked },
  };
}

function wholeDevice(o: GpuOffer, model: AllocationModel): DeviceJson {
  const d: DeviceJson = { name: deviceName(o.address, null), attributes: { ...baseAttributes(o), kind: { string: 'passthrough' }, framework: { string: 'vfio' }, [ATTR_PCI_BUS_ID]: { string: o.address } } };
  if (model !== 'pinned') d.consumesCounters = [{ counterSet: counterSetName(o.address), counters: gpuCounters(o), ...(model === 'compatibility-groups' ? { compatibilityGroups: ['whole'] } : {}) }];
  return d;
}

/** Slot devices of one profile; on SR-IOV cards slot i is VF i, whose address the VM will get. */
function slotDevices(o: GpuOffer, p: ProfileOffer, model: AllocationModel, vfOf: (slot: number) => string | null): DeviceJson[] {
  return Array.from({ length: p.instances }, (_, slot) => {
    const d: DeviceJson = { name: deviceName(o.address, p.profile, slot), attributes: vgpuAttributes(o, p) };
    const vf = vfOf(slot);
    if (vf) d.attributes[ATTR_PCI_BUS_ID] = { string: vf };
    if (model === 'compatibility-groups') d.consumesCounters = [{ counterSet: counterSetName(o.address), counters: vgpuCounters(o, p), compatibilityGroups: [`profile-${profileKey(p.profile)}`] }];
    return d;
  });
}

function sharedDevice(o: GpuOffer, p: ProfileOffer): DeviceJson {
  return {
    name: deviceName(o.address, p.profile),
    attributes: vgpuAttributes(o, p),
    allowMultipleAllocations: true,
    capacity: { vgpus: { value: String(p.instances), requestPolicy: { default: '1', validValues: ['1'] } } },
    consumesCounters: [{ counterSet: counterSetName(o.address), counters: gpuCounters(o) }],
  };
}

/** One GPU's devices in `model`. `vfOf` gives the VF address of a slot (SR-IOV), or null. */
export function gpuDevices(o: GpuOffer, model: AllocationModel, vfOf: (slot: number) => string | null): { devices: DeviceJson[]; info: DeviceInfo[] } {
  const devices: DeviceJson[] = [];
  const info: DeviceInfo[] = [];
  const profiles = model === 'pinned' ? o.profiles.slice(0, 1) : o.profiles;
  for (const p of profiles) {
    if (model === 'shared') {
      devices.push(sharedDevice(o, p));
      info.push({ name: deviceName(o.address, p.profile), gpu: o.address, profile: p.profile, slot: null });
      continue;
    }
    const slots = slotDevices(o, p, model, o.framework === 'sriov' ? vfOf : () => null);
    devices.push(...slots);
    slots.forEach((d, slot) => info.push({ name: d.name, gpu: o.address, profile: p.profile, slot }));
  }
  if (o.whole && (model !== 'pinned' || profiles.length === 0)) {
    devices.push(wholeDevice(o, model));
    info.push({ name: deviceName(o.address, null), gpu: o.address, profile: null, slot: null });
  }
  return { devices, info };
}

/** The node's pool: a counter set per GPU (none in `pinned`) and every GPU's devices. */
export function poolOf(offers: readonly { offer: GpuOffer; vfOf: (slot: number) => string | null }[], model: AllocationModel): Pool {
  const pool: Pool = { counterSets: [], devices: [], info: new Map() };
  for (const { offer, vfOf } of offers) {
    const { devices, info } = gpuDevices(offer, model, vfOf);
    if (devices.length === 0) continue;
    if (model !== 'pinned') pool.counterSets.push({ name: counterSetName(offer.address), counters: gpuCounters(offer) });
    pool.devices.push(...devices);
    for (const i of info) pool.info.set(i.name, i);
  }
  return pool;
}
