/**
 * Names the DRA driver publishes and reads back: the driver, counter sets and
 * devices in the ResourceSlices, and the attributes on them. Device names are
 * DNS labels derived from the GPU's PCI address and the profile, so the same
 * node always publishes the same names, and a name allocated under an older
 * policy still says which GPU and profile it meant.
 */
import { checkPciAddress } from '../../model/pci.js';

export const DRIVER_NAME = 'gpu.vmgpu.io';
/** Standard attributes (resource.kubernetes.io/...). */
export const ATTR_PCI_BUS_ID = 'resource.kubernetes.io/pciBusID';
export const ATTR_PCIE_ROOT = 'resource.kubernetes.io/pcieRoot';
export const ATTR_NUMA_NODE = 'resource.kubernetes.io/numaNode';

/** `gpu-0000-18-00-0` for 0000:18:00.0: the GPU's part of every name. */
function gpuKey(address: string): string {
  return `gpu-${checkPciAddress(address).replace(/[:.]/g, '-')}`;
}

/** A profile as it appears in a device name: `L40S-12Q` -> `l40s-12q`. */
export function profileKey(profile: string): string {
  return profile.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
}

/**
 * The device name: `<gpu>-<profile>` (a shareable device), `<gpu>-<profile>-s<slot>`
 * (one vGPU slot), or `<gpu>-whole` (passthrough).
 */
export function deviceName(address: string, profile: string | null, slot: number | null = null): string {
  const name = `${gpuKey(address)}-${profile === null ? 'whole' : profileKey(profile)}${slot === null ? '' : `-s${slot}`}`;
  if (name.length > 63) throw new Error(`internal error: device name ${name} is longer than 63 characters`);
  return name;
}

/** What a device name says; the profile as its key (match it against the GPU's profiles). */
export interface DeviceRef {
  gpu: string;
  /** null: the whole GPU. */
  profileKey: string | null;
  slot: number | null;
}

const NAME_RE = /^gpu-([0-9a-f]{4})-([0-9a-f]{2})-([0-9a-f]{2})-([0-9a-f])-([a-z0-9][a-z0-9-]*?)(?:-s(0|[1-9][0-9]{0,3}))?$/;

/** Parse a device name of ours; null when it is not one. */
export function parseDeviceName(name: string): DeviceRef | null {
  const m = NAME_RE.exec(name);
  if (!m) return null;
  const gpu = `${m[1]}:${m[2]}:${m[3]}.${m[4]}`;
  const key = m[5]!;
  const slot = m[6] === undefined ? null : Number(m[6]);
  if (key === 'whole') return slot === null ? { gpu, profileKey: null, slot } : null;
  return { gpu, profileKey: key, slot };
}

/** The counter set of one GPU. */
export function counterSetName(address: string): string {
  return gpuKey(address);
}
