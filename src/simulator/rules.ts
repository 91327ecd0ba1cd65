/**
 * The NVIDIA vGPU manager's capacity rules for one simulated GPU: which vGPU
 * types it offers next to what it already has (one type per GPU unless
 * mixed-size mode, one series in mixed-size mode, the framebuffer, the types'
 * instance limits, MIG mode and the GPU instances' room), and where a
 * MIG-backed vGPU goes. No kinder than a real node (docs/simulator.md).
 */
import { InputError } from '../model/errors.js';
import type { SimType } from './hardware.js';
import type { SimInstance } from './mig.js';
import type { SimFn, SimGpu, SimMdev, SimVf } from './state.js';

export function typeOf(gpu: SimGpu, id: number): SimType | undefined {
  return gpu.types.find((t) => t.id === id);
}

/** A type by profile (`L40S-12Q`) or name, for specs; throws naming the profiles the GPU has. */
export function typeByProfile(gpu: SimGpu, profile: string): SimType {
  const t = gpu.types.find((x) => x.profile === profile || x.name === profile);
  if (!t) throw new InputError(`simulator: ${gpu.model.key} has no profile ${profile} (has ${gpu.types.map((x) => x.profile).join(', ')})`);
  return t;
}

/** The vGPU types configured on the GPU: its VFs' and its mdevs'. */
function configured(gpu: SimGpu): SimType[] {
  const out: SimType[] = [];
  for (const v of gpu.vfs) if (v.typeId !== 0) out.push(typeOf(gpu, v.typeId)!);
  for (const m of gpu.mdevs.values()) out.push(m.type);
  return out;
}

/** The vGPU types sitting on one GPU instance. */
export function occupants(gpu: SimGpu, gi: number): SimType[] {
  const vfs = gpu.vfs.filter((v) => v.typeId !== 0 && v.gi === gi).map((v) => typeOf(gpu, v.typeId)!);
  return [...vfs, ...[...gpu.mdevs.values()].filter((m) => m.gi === gi).map((m) => m.type)];
}

/** The GPU instance one more MIG-backed vGPU of `t` would go on. */
export function roomFor(gpu: SimGpu, t: SimType): SimInstance | undefined {
  return gpu.mig?.roomFor(t, (gi) => occupants(gpu, gi));
}

/** Whether one more instance of `t` fits next to what the GPU already has (`used`: its configured types, when known). */
function fits(gpu: SimGpu, t: SimType, used = configured(gpu)): boolean {
  if (used.some((u) => u.migBacked !== t.migBacked)) return false;
  // MIG mode decides which kind the driver offers; a MIG-backed vGPU needs a GPU instance with room.
  if ((gpu.mig?.current ?? false) !== t.migBacked) return false;
  if (t.migBacked) return used.filter((u) => u.id === t.id).length < t.maxInstances && roomFor(gpu, t) !== undefined;
  if (!gpu.heterogeneous && used.some((u) => u.id !== t.id)) return false;
  if (gpu.heterogeneous && used.some((u) => u.series !== t.series)) return false;
  const sameType = used.filter((u) => u.id === t.id).length;
  // MIG-backed vGPUs live in GPU instances, whose memory the names round up: their max instances bound them.
  const taken = (x: SimType) => (x.migBacked ? 0 : x.framebufferMiB);
  const usedFb = used.reduce((n, u) => n + taken(u), 0);
  return sameType < t.maxInstances && usedFb + taken(t) <= gpu.framebufferMiB;
}

/** What a VF's `creatable_vgpu_types` lists: nothing once it has a type. */
export function creatable(gpu: SimGpu, vf: SimVf): SimType[] {
  if (vf.typeId !== 0) return [];
  const used = configured(gpu);
  return gpu.types.filter((t) => fits(gpu, t, used));
}

/** An mdev type's `available_instances` under one parent. */
export function availableInstances(gpu: SimGpu, t: SimType, parent: SimFn): number {
  if (gpu.mdevOnVfs) {
    // One vGPU per VF.
    if ([...gpu.mdevs.values()].some((m) => m.parent === parent)) return 0;
    return fits(gpu, t) ? 1 : 0;
  }
  let n = 0;
  // Count how many more would fit, one at a time (the rules are not linear in mixed mode).
  const extra: SimMdev[] = [];
  while (fits(gpu, t) && n < 64) {
    const uuid = `probe-${n}`;
    const m = { uuid, gpu, parent, type: t, group: -1, params: '', gi: null };
    gpu.mdevs.set(uuid, m);
    extra.push(m);
    n++;
  }
  for (const m of extra) gpu.mdevs.delete(m.uuid);
  return n;
}

/** The functions that carry `mdev_supported_types` right now. */
export function mdevParents(gpu: SimGpu, vgpuHostDriver: boolean): SimFn[] {
  if (gpu.model.framework !== 'mdev' || !vgpuHostDriver || gpu.pf.driver !== 'nvidia') return [];
  if (!gpu.mdevOnVfs) return [gpu.pf];
  return gpu.vfs.filter((v) => v.fn.driver === 'nvidia').map((v) => v.fn);
}
