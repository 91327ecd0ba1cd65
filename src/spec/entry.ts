/**
 * One entry of a config (`vgpu-configs.<name>[i]`), read strictly: which GPUs it
 * selects, its mode, the vGPUs it asks for and vmgpu's per-entry extensions.
 * Every problem is reported with its position through the YamlReader.
 */
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import { isMigBacked, type Profile } from '../model/profile.js';
import { parsePciAddress } from '../model/pci.js';
import { defaultEntry, GPU_MODES, type ConfigEntry, type GpuMode, type VgpuDeviceRequest } from './config.js';
import { checkExtendedResourceName, checkParamKey, checkParamValue, NUMERIC_PROFILE_MESSAGE, parseDeviceFilter, parseProfileKey, type DeviceFilter } from './grammar.js';
import { closestNames, didYouMean } from './suggest.js';
import { plainInteger, scalarText, type Field, type YamlReader } from './yaml-reader.js';

/** Upper bound for counts, GPU indices and VF indices: far above any real card, well inside safe integers. */
const MAX_COUNT = 65535;

/** NVIDIA's keys first, then vmgpu's extensions. */
export const ENTRY_KEYS = [
  'device-filter',
  'devices',
  'vgpu-devices',
  'pci-addresses',
  'mode',
  'vf-placement',
  'vgpu-params',
  'resource-names',
  'resource-name',
  'mixed-sizes',
] as const;

/** Keys that only make sense for `mode: vgpu`. */
const VGPU_ONLY_KEYS = ['vf-placement', 'vgpu-params', 'resource-names', 'mixed-sizes'] as const;

export function readEntryList(r: YamlReader, c: Field): ConfigEntry[] {
  if (c.value === null || !isSeq(c.value)) {
    r.wrongType(c.path, c.value, c.valueOffset, 'a list of entries (each "- devices: ..." with "vgpu-devices")');
    return [];
  }
  const items = r.items(c.value, c.path);
  if (items.length === 0) {
    r.report(c.path, c.valueOffset, 'at least one entry is required, e.g. "- devices: all" with "vgpu-devices: {...}"');
  }
  const out: ConfigEntry[] = [];
  for (const it of items) {
    const e = readEntry(r, it.node, it.offset, it.path);
    if (e) out.push(e);
  }
  return out;
}

function readEntry(r: YamlReader, node: Node | null, offset: number, path: string): ConfigEntry | null {
  if (node === null || !isMap(node)) {
    r.wrongType(path, node, offset, 'a mapping with "devices" and "vgpu-devices"');
    return null;
  }
  const pos = r.position(offset);
  const f = r.known(r.fields(node, path), ENTRY_KEYS, path);
  const entry: ConfigEntry = defaultEntry({ line: pos.line, column: pos.column, path });
  // mode first: what else is required or allowed depends on it.
  const mode = readMode(r, f.get('mode'));
  entry.mode = mode ?? 'vgpu';
  readSelection(r, f, entry, path, offset);
  const profiles = readRequests(r, f, entry, mode, path, offset);
  checkModeKeys(r, f, mode, path);
  if (mode === 'vgpu') readVgpuOptions(r, f, entry, profiles);
  const rn = f.get('resource-name');
  if (rn && mode === 'passthrough') entry.passthroughResourceName = readPassthroughName(r, rn);
  return entry;
}

/** `mode`, or null when it is not one of GPU_MODES (reported). */
function readMode(r: YamlReader, mf: Field | undefined): GpuMode | null {
  if (!mf) return 'vgpu';
  const v = mf.value && isScalar(mf.value) ? mf.value.value : undefined;
  if (typeof v === 'string' && (GPU_MODES as readonly string[]).includes(v)) return v as GpuMode;
  const hint = typeof v === 'string' ? didYouMean(v, GPU_MODES, 1) : '';
  r.report(mf.path, mf.valueOffset, `expected one of ${GPU_MODES.join(', ')}, got ${r.describe(mf.value)}.${hint}`.replace(/\.$/, ''));
  return null;
}

/** Which GPUs: `device-filter`, `pci-addresses`, `devices`. */
function readSelection(r: YamlReader, f: Map<string, Field>, entry: ConfigEntry, path: string, offset: number): void {
  const df = f.get('device-filter');
  if (df) entry.deviceFilter = readDeviceFilter(r, df);
  const pf = f.get('pci-addresses');
  if (pf) entry.pciAddresses = readPciAddresses(r, pf);
  const dv = f.get('devices');
  if (dv) {
    entry.devices = readDevices(r, dv);
    if (pf && Array.isArray(entry.devices)) {
      r.report(dv.path, dv.valueOffset, 'use either "devices: [indices]" or "pci-addresses", not both ("devices: all" may be combined with "pci-addresses")');
    }
  } else if (!pf) {
    r.report(path, offset, 'missing required key "devices": use "devices: all", a list of GPU indices such as [0, 1], or "pci-addresses"');
  }
}

/** `vgpu-devices`, required in mode vgpu and refused in the others; the requests by profile. */
function readRequests(r: YamlReader, f: Map<string, Field>, entry: ConfigEntry, mode: GpuMode | null, path: string, offset: number): Map<string, VgpuDeviceRequest> {
  const vd = f.get('vgpu-devices');
  const profiles = new Map<string, VgpuDeviceRequest>();
  if (vd) {
    entry.vgpuDevices = readVgpuDevices(r, vd);
    for (const d of entry.vgpuDevices) profiles.set(d.profile, d);
    if ((mode === 'passthrough' || mode === 'host' || mode === 'dra') && entry.vgpuDevices.length > 0) {
      r.report(vd.path, vd.valueOffset, `mode ${mode} takes no vGPUs; remove "vgpu-devices" or use "mode: vgpu"`);
    }
  } else if (mode === 'vgpu') {
    r.report(path, offset, 'missing required key "vgpu-devices": list the vGPU types and counts, e.g. {"L40S-12Q": 4}, or {} for none');
  }
  return profiles;
}

/** Keys that belong to another mode than the entry's. */
function checkModeKeys(r: YamlReader, f: Map<string, Field>, mode: GpuMode | null, path: string): void {
  if (mode === null) return;
  for (const k of VGPU_ONLY_KEYS) {
    const kf = f.get(k);
    if (kf && mode !== 'vgpu') r.report(path, kf.keyOffset, `"${k}" only applies to mode vgpu; this entry is mode ${mode}`);
  }
  const rn = f.get('resource-name');
  if (rn && mode !== 'passthrough') {
    r.report(path, rn.keyOffset, `"resource-name" only applies to mode passthrough (for vGPU types use "resource-names"); this entry is mode ${mode}`);
  }
}

/** vmgpu's vGPU extensions: `vf-placement`, `vgpu-params`, `resource-names`, `mixed-sizes`. */
function readVgpuOptions(r: YamlReader, f: Map<string, Field>, entry: ConfigEntry, profiles: Map<string, VgpuDeviceRequest>): void {
  const vp = f.get('vf-placement');
  if (vp) entry.vfPlacement = readVfPlacement(r, vp, profiles);
  const pp = f.get('vgpu-params');
  if (pp) entry.vgpuParams = readVgpuParams(r, pp, profiles);
  const rs = f.get('resource-names');
  if (rs) entry.resourceNames = readResourceNames(r, rs, profiles);
  const ms = f.get('mixed-sizes');
  if (ms) {
    if (ms.value && isScalar(ms.value) && typeof ms.value.value === 'boolean') entry.mixedSizes = ms.value.value;
    else r.wrongType(ms.path, ms.value, ms.valueOffset, 'true or false');
  }
}

function readPassthroughName(r: YamlReader, rn: Field): string | null {
  if (rn.value && isScalar(rn.value) && typeof rn.value.value === 'string') {
    const bad = checkExtendedResourceName(rn.value.value);
    if (!bad) return rn.value.value;
    r.report(rn.path, rn.valueOffset, bad);
  } else {
    r.wrongType(rn.path, rn.value, rn.valueOffset, 'a resource name such as "nvidia.com/L40S"');
  }
  return null;
}

function readDeviceFilter(r: YamlReader, f: Field): DeviceFilter[] | null {
  const one = (node: Node | null, offset: number, path: string): DeviceFilter | null => {
    if (node === null || !isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number')) {
      r.wrongType(path, node, offset, 'a PCI ID string such as "0x26B910DE"');
      return null;
    }
    const parsed = parseDeviceFilter(scalarText(node));
    if ('error' in parsed) {
      r.report(path, offset, parsed.error);
      return null;
    }
    return parsed;
  };
  const v = f.value;
  if (v === null || (isScalar(v) && (v.value === null || v.value === ''))) return null; // NVIDIA: no filter
  if (isSeq(v)) {
    const out: DeviceFilter[] = [];
    for (const it of r.items(v, f.path)) {
      const p = one(it.node, it.offset, it.path);
      if (p) out.push(p);
    }
    return out.length > 0 ? out : null;
  }
  const p = one(v, f.valueOffset, f.path);
  return p ? [p] : null;
}

function readDevices(r: YamlReader, f: Field): 'all' | number[] {
  const v = f.value;
  if (v && isScalar(v) && v.value === 'all') return 'all';
  if (v && isSeq(v)) {
    const out: number[] = [];
    const seen = new Set<number>();
    for (const it of r.items(v, f.path)) {
      const n = plainInteger(it.node);
      if (n === null || n > MAX_COUNT) {
        r.wrongType(it.path, it.node, it.offset, 'a GPU index (0, 1, ...: position among NVIDIA GPUs sorted by PCI address)');
      } else if (seen.has(n)) {
        r.report(it.path, it.offset, `GPU index ${n} is listed twice`);
      } else {
        seen.add(n);
        out.push(n);
      }
    }
    return out;
  }
  const hint = v && isScalar(v) && typeof v.value === 'string' ? didYouMean(v.value, ['all'], 1) : '';
  r.report(f.path, f.valueOffset, `expected "all" or a list of GPU indices such as [0, 1], got ${r.describe(v)}.${hint}`.replace(/\.$/, ''));
  return [];
}

function readPciAddresses(r: YamlReader, f: Field): string[] {
  const v = f.value;
  const list = v && isSeq(v) ? r.items(v, f.path) : [{ node: v, offset: f.valueOffset, path: f.path }];
  if (v && isSeq(v) && list.length === 0) {
    r.report(f.path, f.valueOffset, 'list at least one PCI address, e.g. ["0000:3b:00.0"]');
  }
  const out: string[] = [];
  const seen = new Set<string>();
  for (const it of list) {
    if (it.node === null || !isScalar(it.node) || typeof it.node.value !== 'string') {
      r.wrongType(it.path, it.node, it.offset, 'a PCI address string such as "0000:3b:00.0"');
      continue;
    }
    let addr: string;
    try {
      addr = parsePciAddress(it.node.value);
    } catch {
      r.report(it.path, it.offset, `${JSON.stringify(it.node.value)} is not a PCI address: expected dddd:bb:dd.f in hex, e.g. "0000:3b:00.0"`);
      continue;
    }
    if (seen.has(addr)) {
      r.report(it.path, it.offset, `PCI address ${addr} is listed twice`);
      continue;
    }
    seen.add(addr);
    out.push(addr);
  }
  return out;
}

/** A profile-name key (in vgpu-devices, vf-placement, ...); reports and returns null when it is not a name. */
function readProfileKey(r: YamlReader, path: string, field: Field): Profile | null {
  const kn = field.keyNode;
  if (isScalar(kn) && typeof kn.value === 'number') {
    r.report(path, field.keyOffset, `${JSON.stringify(field.key)} is a number: ${NUMERIC_PROFILE_MESSAGE}`);
    return null;
  }
  const parsed = parseProfileKey(field.key);
  if ('error' in parsed) {
    r.report(path, field.keyOffset, parsed.error);
    return null;
  }
  return parsed;
}

function readVgpuDevices(r: YamlReader, f: Field): VgpuDeviceRequest[] {
  const v = f.value;
  if (v === null || (isScalar(v) && (v.value === null || v.value === undefined))) return []; // NVIDIA: null = none
  if (!isMap(v)) {
    r.wrongType(f.path, v, f.valueOffset, 'a mapping of vGPU type names to counts, e.g. {"L40S-12Q": 4}');
    return [];
  }
  const out: VgpuDeviceRequest[] = [];
  const migBacked = new Map<string, boolean>();
  const byProfile = new Map<string, string>();
  for (const t of r.fields(v, f.path)) {
    const p = readProfileKey(r, f.path, t);
    const count = plainInteger(t.value);
    if (count === null || count < 1 || count > MAX_COUNT) {
      if (count === 0) r.report(t.path, t.valueOffset, 'count must be at least 1; remove the type to have none');
      else r.wrongType(t.path, t.value, t.valueOffset, `a count from 1 to ${MAX_COUNT}`);
    }
    if (!p) continue;
    const prev = byProfile.get(p.name);
    if (prev !== undefined) {
      r.report(f.path, t.keyOffset, `${JSON.stringify(t.key)} names the same type as ${JSON.stringify(prev)}; merge them into one count`);
      continue;
    }
    byProfile.set(p.name, t.key);
    migBacked.set(p.name, isMigBacked(p));
    if (count !== null && count >= 1 && count <= MAX_COUNT) out.push({ profile: p.name, original: t.key, count });
  }
  // Like NVIDIA: time-sliced and MIG-backed types cannot share a GPU.
  const parsed = out.map((d) => ({ d, mig: migBacked.get(d.profile) === true }));
  const mig = parsed.find((x) => x.mig);
  const ts = parsed.find((x) => !x.mig);
  if (mig && ts) {
    r.report(f.path, f.valueOffset, `cannot mix time-sliced (${ts.d.original}) and MIG-backed (${mig.d.original}) vGPU types on the same GPU; use separate entries for separate GPUs`);
  }
  return out;
}

/**
 * Fields of a profile-keyed mapping (vf-placement, vgpu-params, resource-names):
 * each key must name a type requested in vgpu-devices.
 */
function profileFields(
  r: YamlReader,
  f: Field,
  profiles: Map<string, VgpuDeviceRequest>,
  expected: string,
): { field: Field; profile: string }[] {
  const v = f.value;
  if (v === null || !isMap(v)) {
    r.wrongType(f.path, v, f.valueOffset, expected);
    return [];
  }
  const out: { field: Field; profile: string }[] = [];
  const seen = new Map<string, string>();
  for (const t of r.fields(v, f.path)) {
    const p = readProfileKey(r, f.path, t);
    if (!p) continue;
    if (seen.has(p.name)) {
      r.report(f.path, t.keyOffset, `${JSON.stringify(t.key)} names the same type as ${JSON.stringify(seen.get(p.name))}; keep one`);
      continue;
    }
    seen.set(p.name, t.key);
    if (!profiles.has(p.name)) {
      const requested = [...profiles.keys()];
      const close = closestNames(p.name, requested, 1);
      const hint = close.length > 0 ? `; did you mean ${JSON.stringify(close[0])}?` : requested.length > 0 ? ` (requested: ${requested.join(', ')})` : '';
      r.report(f.path, t.keyOffset, `${JSON.stringify(t.key)} is not requested in vgpu-devices of this entry${hint}`);
      continue;
    }
    out.push({ field: t, profile: p.name });
  }
  return out;
}

function readVfPlacement(r: YamlReader, f: Field, profiles: Map<string, VgpuDeviceRequest>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const owner = new Map<number, string>();
  for (const { field, profile } of profileFields(r, f, profiles, 'a mapping of vGPU type names to VF index lists, e.g. {"L40S-12Q": [0, 1]}')) {
    const v = field.value;
    if (v === null || !isSeq(v)) {
      r.wrongType(field.path, v, field.valueOffset, 'a list of VF indices such as [0, 1]');
      continue;
    }
    const indices: number[] = [];
    for (const it of r.items(v, field.path)) {
      const n = plainInteger(it.node);
      if (n === null || n > MAX_COUNT) {
        r.wrongType(it.path, it.node, it.offset, 'a VF index (the N of virtfnN on the GPU: 0, 1, ...)');
        continue;
      }
      const prev = owner.get(n);
      if (prev !== undefined) {
        r.report(it.path, it.offset, prev === profile ? `VF ${n} is listed twice` : `VF ${n} is already placed for ${prev}; one VF holds one vGPU`);
        continue;
      }
      owner.set(n, profile);
      indices.push(n);
    }
    const want = profiles.get(profile)!.count;
    if (v.items.length !== want) {
      r.report(
        field.path,
        field.valueOffset,
        `lists ${v.items.length} VF${v.items.length === 1 ? '' : 's'} but vgpu-devices asks for ${want} ${profiles.get(profile)!.original}; list one VF index per instance`,
      );
    }
    out[profile] = indices;
  }
  return out;
}

function readVgpuParams(r: YamlReader, f: Field, profiles: Map<string, VgpuDeviceRequest>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const { field, profile } of profileFields(r, f, profiles, 'a mapping of vGPU type names to parameters, e.g. {"L40S-12Q": {frame_rate_limiter: 0}}')) {
    const v = field.value;
    if (v === null || !isMap(v)) {
      r.wrongType(field.path, v, field.valueOffset, 'a mapping of vgpu_params keys to values, e.g. {frame_rate_limiter: 0}');
      continue;
    }
    const params: Record<string, string> = {};
    for (const p of r.fields(v, field.path)) {
      const badKey = checkParamKey(p.key);
      if (badKey) {
        r.report(field.path, p.keyOffset, badKey);
        continue;
      }
      const val = p.value;
      if (val === null || !isScalar(val) || (typeof val.value !== 'string' && typeof val.value !== 'number')) {
        r.wrongType(p.path, val, p.valueOffset, 'a string or number');
        continue;
      }
      const text = scalarText(val);
      const badValue = checkParamValue(text);
      if (badValue) {
        r.report(p.path, p.valueOffset, badValue);
        continue;
      }
      params[p.key] = text;
    }
    out[profile] = params;
  }
  return out;
}

function readResourceNames(r: YamlReader, f: Field, profiles: Map<string, VgpuDeviceRequest>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { field, profile } of profileFields(r, f, profiles, 'a mapping of vGPU type names to resource names, e.g. {"L40S-12Q": "nvidia.com/L40S-12Q"}')) {
    const v = field.value;
    if (v === null || !isScalar(v) || typeof v.value !== 'string') {
      r.wrongType(field.path, v, field.valueOffset, 'a resource name such as "example.com/l40s-small"');
      continue;
    }
    const bad = checkExtendedResourceName(v.value);
    if (bad) {
      r.report(field.path, field.valueOffset, bad);
      continue;
    }
    out[profile] = v.value;
  }
  return out;
}
