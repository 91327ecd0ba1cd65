/**
 * Which GPUs an entry selects: the intersection of its device filter, its
 * `devices` indices and its `pci-addresses`, exactly as docs/config.md states.
 * Pure functions over the inventory's plain data, for the planner and the CLI.
 */
import { toPciId } from '../model/pci.js';
import type { ConfigEntry, ConfigProblem, DeviceFilter } from './config.js';

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
  return id === null || id === undefined ? null : (toPciId(id) ?? null);
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
/** A GPU of the inventory (or anything shaped like one) as the matching rules see it. */
export function gpuIdentity(gpu: { index: number; pci: Omit<GpuIdentity, 'index'> }): GpuIdentity {
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

/** Which entry each GPU gets, for one config on one node. */
export interface GpuAssignment<G extends GpuIdentity = GpuIdentity> {
  /** GPUs selected by exactly one entry, in the order given, with that entry. */
  assigned: { gpu: G; entry: ConfigEntry }[];
  /** GPUs no entry selects: the config leaves them as they are. */
  untouched: G[];
  /**
   * Entries that select no GPU because their device-filter matches none here.
   * Not an error: a config may carry entries for models this node lacks (NVIDIA's
   * own `default` config does). Worth a log line.
   */
  unmatched: ConfigEntry[];
  /**
   * Errors, positioned at the entry: a GPU index out of range, an address that
   * is not an NVIDIA GPU here, a GPU claimed by two entries, or a config that
   * selects no GPU at all. A plan must not be made when this is non-empty.
   */
  problems: ConfigProblem[];
}

function describeGpu(g: GpuIdentity): string {
  return `${g.address} (${normId(g.vendorId) ?? g.vendorId}:${normId(g.deviceId) ?? g.deviceId}, index ${g.index})`;
}

/** Resolve a config's entries against the node's GPUs (see GpuAssignment). Pure. */
export function assignGpus<G extends GpuIdentity>(entries: readonly ConfigEntry[], gpus: readonly G[]): GpuAssignment<G> {
  const problems: ConfigProblem[] = [];
  const owner = new Map<string, ConfigEntry>();
  const assigned: { gpu: G; entry: ConfigEntry }[] = [];
  const unmatched: ConfigEntry[] = [];
  const addresses = new Set(gpus.map((g) => g.address.toLowerCase()));
  const at = (e: ConfigEntry, key: string, message: string): void => {
    problems.push({ path: key ? `${e.path}.${key}` : e.path, line: e.line, column: e.column, message });
  };
  for (const e of entries) {
    if (e.devices !== 'all') {
      for (const i of e.devices) {
        if (!gpus.some((g) => g.index === i)) {
          at(e, 'devices', gpus.length === 0 ? `GPU index ${i}: this node has no NVIDIA GPU` : `GPU index ${i} is out of range: this node has ${gpus.length} NVIDIA GPU${gpus.length === 1 ? '' : 's'} (indices 0-${gpus.length - 1})`);
        }
      }
    }
    for (const a of e.pciAddresses ?? []) {
      if (!addresses.has(a)) {
        const list = gpus.map((g) => g.address).join(', ') || 'none';
        at(e, 'pci-addresses', `${a} is not an NVIDIA GPU on this node (GPUs: ${list})`);
      }
    }
    const selected = selectGpus(e, gpus);
    if (selected.length === 0) unmatched.push(e);
    for (const g of selected) {
      const key = g.address.toLowerCase();
      const prev = owner.get(key);
      if (prev) {
        at(e, '', `selects GPU ${describeGpu(g)}, which ${prev.path} (line ${prev.line}) already selects; a GPU takes one entry: narrow device-filter, devices or pci-addresses`);
        continue;
      }
      owner.set(key, e);
      assigned.push({ gpu: g, entry: e });
    }
  }
  if (entries.length > 0 && assigned.length === 0 && problems.length === 0) {
    const first = entries[0]!;
    const list = gpus.map(describeGpu).join(', ') || 'none';
    problems.push({
      path: first.path.replace(/\[\d+\]$/, ''),
      line: first.line,
      column: first.column,
      message: `this config selects no GPU on this node (NVIDIA GPUs here: ${list}); check device-filter, devices and pci-addresses`,
    });
  }
  const untouched = gpus.filter((g) => !owner.has(g.address.toLowerCase()));
  assigned.sort((a, b) => gpus.indexOf(a.gpu) - gpus.indexOf(b.gpu));
  return { assigned, untouched, unmatched, problems };
}
