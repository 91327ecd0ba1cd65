/**
 * Which GPUs an entry selects: the intersection of its device filter, its
 * `devices` indices and its `pci-addresses`, exactly as docs/config.md states.
 * Pure functions over the inventory's plain data, for the planner and the CLI.
 */
import type { Gpu } from '../inventory/types.js';
import type { ConfigEntry, DeviceFilter } from './config.js';

/** The PCI identity of a GPU as the inventory reports it (hex IDs with or without `0x`, any case). */
export interface GpuIdentity {
  /** Position among NVIDIA GPUs sorted by PCI address. */
  index: number;
  address: string;
  vendorId: string;
  deviceId: string;
  subsystemVendorId: string | null;
  subsystemDeviceId: string | null;
}

function normId(id: string | null | undefined): string | null {
  if (id === null || id === undefined) return null;
  const hex = id.trim().toLowerCase().replace(/^0x/, '');
  return /^[0-9a-f]{1,4}$/.test(hex) ? hex.padStart(4, '0') : null;
}

/** Whether one filter matches a GPU's IDs (the subsystem part only when the filter has one). */
export function filterMatches(filter: DeviceFilter, gpu: Pick<GpuIdentity, 'vendorId' | 'deviceId' | 'subsystemVendorId' | 'subsystemDeviceId'>): boolean {
  if (normId(gpu.deviceId) !== filter.deviceId || normId(gpu.vendorId) !== filter.vendorId) return false;
  if (filter.subsystemDeviceId !== undefined || filter.subsystemVendorId !== undefined) {
    return normId(gpu.subsystemDeviceId) === (filter.subsystemDeviceId ?? null) && normId(gpu.subsystemVendorId) === (filter.subsystemVendorId ?? null);
  }
  return true;
}

/** Whether an entry selects a GPU. */
export function entrySelects(entry: ConfigEntry, gpu: GpuIdentity): boolean {
  if (entry.deviceFilter !== null && entry.deviceFilter.length > 0 && !entry.deviceFilter.some((f) => filterMatches(f, gpu))) return false;
  if (entry.devices !== 'all' && !entry.devices.includes(gpu.index)) return false;
  if (entry.pciAddresses !== null && !entry.pciAddresses.includes(gpu.address.toLowerCase())) return false;
  return true;
}

/** The GPUs an entry selects, in the order given. */
export function selectGpus<G extends GpuIdentity>(entry: ConfigEntry, gpus: readonly G[]): G[] {
  return gpus.filter((g) => entrySelects(entry, g));
}

/** The identity of an inventory GPU (`Gpu` from src/inventory/types.ts). */
export function gpuIdentity(gpu: Pick<Gpu, 'index' | 'pci'>): GpuIdentity {
  const p = gpu.pci;
  return {
    index: gpu.index,
    address: p.address,
    vendorId: p.vendorId,
    deviceId: p.deviceId,
    subsystemVendorId: p.subsystemVendorId,
    subsystemDeviceId: p.subsystemDeviceId,
  };
}
