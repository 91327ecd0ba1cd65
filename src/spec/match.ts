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
  /** GPUs that get an entry, in the order given, with that entry. */
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
   * is not an NVIDIA GPU here, two entries that would set one GPU differently,
   * or a config that selects no GPU at all. A plan must not be made when this
   * is non-empty.
   */
  problems: ConfigProblem[];
}

export interface AssignOptions<G extends GpuIdentity> {
  /**
   * Whether the GPU offers every profile the entry asks for. When several
   * entries select one GPU, only those it can take apply (NVIDIA's `default`
   * lists 0x25B6 once for A16 profiles and once for A2 profiles). Without it,
   * every entry applies.
   */
  offers?: (entry: ConfigEntry, gpu: G) => boolean;
}

function describeGpu(g: GpuIdentity): string {
  return `${g.address} (${normId(g.vendorId) ?? g.vendorId}:${normId(g.deviceId) ?? g.deviceId}, index ${g.index})`;
}

function problemAt(e: ConfigEntry, key: string, message: string): ConfigProblem {
  return { path: key ? `${e.path}.${key}` : e.path, line: e.line, column: e.column, message };
}

/** Indices and addresses an entry names that this node does not have. */
function rangeProblems(e: ConfigEntry, gpus: readonly GpuIdentity[], addresses: ReadonlySet<string>): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const i of e.devices === 'all' ? [] : e.devices) {
    if (gpus.some((g) => g.index === i)) continue;
    out.push(problemAt(e, 'devices', gpus.length === 0 ? `GPU index ${i}: this node has no NVIDIA GPU` : `GPU index ${i} is out of range: this node has ${gpus.length} NVIDIA GPU${gpus.length === 1 ? '' : 's'} (indices 0-${gpus.length - 1})`));
  }
  for (const a of e.pciAddresses ?? []) {
    if (!addresses.has(a)) out.push(problemAt(e, 'pci-addresses', `${a} is not an NVIDIA GPU on this node (GPUs: ${gpus.map((g) => g.address).join(', ') || 'none'})`));
  }
  return out;
}

/** Whether two entries make the same of a GPU (where they sit in the file and which GPUs they select aside). */
export function sameTarget(a: ConfigEntry, b: ConfigEntry): boolean {
  return targetOf(a) === targetOf(b);
}

/** What an entry makes of a GPU, without where it sits in the file or which GPUs it selects. */
function targetOf(e: ConfigEntry): string {
  const counts: Record<string, number> = {};
  for (const r of e.vgpuDevices) counts[r.profile] = (counts[r.profile] ?? 0) + r.count;
  const sorted = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify([e.mode, sorted(counts), sorted(e.vfPlacement), sorted(e.vgpuParams), sorted(e.resourceNames), e.passthroughResourceName, e.mixedSizes]);
}

const where = (e: ConfigEntry): string => `${e.path} (line ${e.line})`;

/**
 * The entry a GPU takes among those that select it (NVIDIA applies each in
 * turn, and a card takes only the entries whose profiles it offers), or the
 * problem when none or two different ones apply.
 */
function chooseEntry<G extends GpuIdentity>(g: G, candidates: ConfigEntry[], offers: (e: ConfigEntry, g: G) => boolean): ConfigEntry | ConfigProblem {
  if (candidates.length === 1) return candidates[0]!;
  const applicable = candidates.filter((e) => offers(e, g));
  if (applicable.length === 0) {
    const asked = candidates.map((e) => `${where(e)} asks for ${e.vgpuDevices.map((r) => r.original).join(', ')}`).join('; ');
    return problemAt(candidates[0]!, '', `GPU ${describeGpu(g)} is selected by ${candidates.length} entries and offers the profiles of none of them (${asked}); correct the profiles or narrow device-filter, devices or pci-addresses`);
  }
  const first = applicable[0]!;
  const other = applicable.find((e) => !sameTarget(e, first));
  if (!other) return first;
  return problemAt(other, '', `selects GPU ${describeGpu(g)}, which ${where(first)} also selects and sets differently; a GPU takes one entry: narrow device-filter, devices or pci-addresses`);
}

/** Resolve a config's entries against the node's GPUs (see GpuAssignment). Pure. */
export function assignGpus<G extends GpuIdentity>(entries: readonly ConfigEntry[], gpus: readonly G[], opts: AssignOptions<G> = {}): GpuAssignment<G> {
  const offers = opts.offers ?? (() => true);
  const addresses = new Set(gpus.map((g) => g.address.toLowerCase()));
  const problems = entries.flatMap((e) => rangeProblems(e, gpus, addresses));
  const selections = entries.map((e) => ({ entry: e, gpus: selectGpus(e, gpus) }));
  const unmatched = selections.filter((s) => s.gpus.length === 0).map((s) => s.entry);
  const assigned: { gpu: G; entry: ConfigEntry }[] = [];
  const untouched: G[] = [];
  for (const g of gpus) {
    const candidates = selections.filter((s) => s.gpus.includes(g)).map((s) => s.entry);
    if (candidates.length === 0) {
      untouched.push(g);
      continue;
    }
    const chosen = chooseEntry(g, candidates, offers);
    if ('message' in chosen) problems.push(chosen);
    else assigned.push({ gpu: g, entry: chosen });
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
  return { assigned, untouched, unmatched, problems };
}
