/**
 * `vmgpu export`: the node's current layout as a config file.
 *
 * A node NVIDIA's keys can describe (every GPU a vGPU host, no vgpu_params,
 * one vGPU size per GPU) is written in NVIDIA vgpu-device-manager's format
 * only: GPUs with the same vGPUs share an entry selected by `devices` (GPU
 * indices, or `all`), so `nvidia-vgpu-dm` reads the file too. A node that
 * needs vmgpu's extensions (passthrough, host mode, vgpu-params, mixed sizes)
 * gets one entry per GPU by `pci-addresses`, with the extensions it needs.
 */
import type { Gpu, Inventory } from '../inventory/types.js';
import { isNvidiaProfileShape, parseProfile, stripVendorPrefix } from '../model/profile.js';
import { defaultEntry, type ConfigEntry, type ConfigFile } from '../spec/config.js';
import { checkParamKey, checkParamValue } from '../spec/grammar.js';

/** One GPU described without a selection. */
type Described = Pick<ConfigEntry, 'mode' | 'vgpuDevices' | 'vgpuParams' | 'mixedSizes'>;

/** The node's layout as a config named `name`, with notes on what could not be written. */
export function exportConfig(inv: Inventory, name: string): { file: ConfigFile; notes: string[] } {
  const notes: string[] = [];
  const described: [Gpu, Described][] = [];
  for (const g of inv.gpus) {
    const d = describeGpu(g, notes);
    if (d) described.push([g, d]);
  }
  const entries = described.every(([, d]) => nvidiaExpressible(d))
    ? nvidiaEntries(described, inv.gpus.length)
    : described.map(([g, d]) => defaultEntry({ ...d, pciAddresses: [g.pci.address] }));
  return { file: { version: 'v1', filename: '(export)', configs: [{ name, entries, line: 0 }] }, notes };
}

function nvidiaExpressible(d: Described): boolean {
  return d.mode === 'vgpu' && d.mixedSizes === null && Object.keys(d.vgpuParams).length === 0 && d.vgpuDevices.every((r) => isNvidiaProfileShape(r.profile));
}

/** GPUs with the same vGPUs in one entry, by index; `devices: all` when that entry covers every GPU. */
function nvidiaEntries(described: [Gpu, Described][], gpuCount: number): ConfigEntry[] {
  const groups = new Map<string, { indices: number[]; d: Described }>();
  for (const [g, d] of described) {
    const key = JSON.stringify(d.vgpuDevices.map((r) => [r.profile, r.count]));
    const group = groups.get(key) ?? { indices: [], d };
    group.indices.push(g.index);
    groups.set(key, group);
  }
  return [...groups.values()].map(({ indices, d }) => defaultEntry({ ...d, devices: groups.size === 1 && indices.length === gpuCount ? 'all' : indices }));
}

/** What is on one GPU, or null for a GPU vmgpu cannot describe (left out: no entry leaves it as it is). */
function describeGpu(g: Gpu, notes: string[]): Described | null {
  const base: Described = { mode: 'vgpu', vgpuDevices: [], vgpuParams: {}, mixedSizes: null };
  if (g.framework === 'passthrough') return { ...base, mode: 'passthrough' };
  if (g.framework === 'host-driver') return { ...base, mode: 'host' };
  if (g.framework !== 'sriov-vgpu' && g.framework !== 'mdev-vgpu') return null;
  // Profile -> the vgpu_params of each of its vGPUs ('' for none).
  const vgpus = new Map<string, string[]>();
  const add = (profile: string, params: string | null): void => {
    vgpus.set(profile, [...(vgpus.get(profile) ?? []), params ?? '']);
  };
  for (const v of g.vfs) {
    if (!v.currentTypeId) continue;
    if (v.currentProfile) add(v.currentProfile, v.vgpuParams);
    else notes.push(`VF ${v.address} has type ID ${v.currentTypeId} whose name is unknown; left out`);
  }
  for (const p of g.mdevParents) for (const i of p.instances) add(stripVendorPrefix(i.typeName ?? i.typeDir), i.vgpuParams);

  const vgpuParams: Record<string, Record<string, string>> = {};
  for (const [profile, all] of vgpus) {
    const params = commonParams(profile, all, g, notes);
    if (params) vgpuParams[profile] = params;
  }
  const timeSliced = [...vgpus.keys()].filter((p) => parseProfile(p)?.gpuInstanceSlices === null);
  const sizes = new Set(timeSliced.map((p) => parseProfile(p)!.framebufferGB));
  return {
    ...base,
    vgpuDevices: [...vgpus].map(([profile, list]) => ({ profile, original: profile, count: list.length })),
    vgpuParams,
    // Needed to rebuild time-sliced vGPUs of different sizes (SR-IOV only); otherwise leaving it out leaves the mode as it is.
    mixedSizes: g.framework === 'sriov-vgpu' && sizes.size > 1 ? true : null,
  };
}

/** The vgpu_params every vGPU of `profile` shares as a key -> value map; null when none, or when they differ or cannot be written (with a note). */
function commonParams(profile: string, all: string[], g: Gpu, notes: string[]): Record<string, string> | null {
  const first = all[0] ?? '';
  if (all.some((p) => p !== first)) {
    notes.push(`the ${profile} vGPUs on ${g.pci.address} differ in vgpu_params (${[...new Set(all)].map((p) => p || '(none)').join(' / ')}); vgpu-params left out for ${profile}`);
    return null;
  }
  if (first === '') return null;
  const out: Record<string, string> = {};
  for (const pair of first.split(',')) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (eq < 0 || checkParamKey(key) !== null || checkParamValue(value) !== null) {
      notes.push(`vgpu_params "${first}" of the ${profile} vGPUs on ${g.pci.address} is not key=value,... as a config can write it; vgpu-params left out for ${profile}`);
      return null;
    }
    out[key] = value;
  }
  return out;
}
