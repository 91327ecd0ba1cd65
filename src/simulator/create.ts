/**
 * The GPUs a spec asks for: each model's PCI functions on their own bus (the
 * PF, and an audio function in the same IOMMU group where the model has one),
 * bound as the mode says, then configured as the spec says (VFs enabled, vGPU
 * types written, mdevs created, MIG mode and GPU instances), through the same
 * rules a later write would meet.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../model/errors.js';
import { instanceProfileFor, placeInstances } from '../model/mig.js';
import { boardOf, simModel, simTypes, type SimModel } from './hardware.js';
import type { SimKernel } from './kernel.js';
import { SimMig } from './mig.js';
import { availableInstances, creatable, mdevParents, roomFor, typeByProfile } from './rules.js';
import type { SimFn, SimGpu, SimGpuSpec, SimNodeSpec } from './state.js';

const BUSES = ['18', '2a', '3b', '5d', '9a', 'ab', 'ba', 'db', '1c', '4e', '6f', '8c', 'c1', 'c9', 'e1', 'f1'];

/** Create the spec's GPUs on the kernel, in PCI address order; the first half of the buses on NUMA node 0. */
export function createGpus(k: SimKernel, spec: SimNodeSpec): void {
  const total = spec.gpus.reduce((n, g) => n + (g.count ?? 1), 0);
  let bus = 0;
  for (const gs of spec.gpus) {
    const model = simModel(gs.model);
    const count = gs.count ?? 1;
    for (let i = 0; i < count; i++) {
      const b = BUSES[bus] ?? (0x20 + bus).toString(16).padStart(2, '0');
      const numa = gs.numaNode ?? (bus < Math.max(1, Math.ceil(total / 2)) ? 0 : 1);
      bus++;
      k.gpus.push(newGpu(k, model, b, gs, numa));
    }
  }
  k.gpus.sort((a, b) => a.pf.addr.localeCompare(b.pf.addr));
}

function newGpu(k: SimKernel, model: SimModel, bus: string, gs: SimGpuSpec, numa: number): SimGpu {
  const board = boardOf(model);
  const gpu = {} as SimGpu;
  const { pf, audio } = pciFunctions(k, gpu, { model, bus, numa, passthrough: gs.mode === 'passthrough', audio: gs.audio ?? model.audioDeviceId !== null });
  Object.assign(gpu, {
    model,
    mdevOnVfs: board.mdevOnVfs,
    pf,
    audio,
    types: simTypes(model, k.driver.version),
    framebufferMiB: board.framebufferMiB,
    vfs: [],
    heterogeneous: gs.heterogeneous ?? false,
    present: true,
    mdevs: new Map(),
    mig: board.mig ? new SimMig(board.mig) : null,
  } satisfies Omit<SimGpu, never>);
  if (gs.mode === 'sriov-vgpu') configureSriov(k, gpu, gs);
  else if (gs.mode === 'mdev-vgpu') configureMdev(k, gpu, gs);
  else if (gs.profiles?.length) throw new InputError(`simulator: profiles only apply to modes sriov-vgpu and mdev-vgpu`);
  return gpu;
}

interface FunctionsSpec {
  model: SimModel;
  bus: string;
  numa: number;
  /** Bound to a VFIO driver (with the IOMMU on), else to nvidia and snd_hda_intel. */
  passthrough: boolean;
  audio: boolean;
}

/** The GPU's PF and audio function, sharing one IOMMU group. */
function pciFunctions(k: SimKernel, gpu: SimGpu, s: FunctionsSpec): { pf: SimFn; audio: SimFn | null } {
  const { model, bus, numa, passthrough: pt } = s;
  const group = k.iommu ? k.nextGroup++ : null;
  const pf: SimFn = {
    addr: `0000:${bus}:00.0`,
    bus,
    deviceId: model.deviceId,
    subsystemDeviceId: model.subsystemDeviceId,
    classCode: model.classCode,
    revision: model.revision,
    driver: pt ? (k.iommu ? k.vfioDriverFor(model) : null) : 'nvidia',
    override: pt ? k.vfioDriverFor(model) : null,
    group,
    numa,
    kind: 'pf',
    gpu,
    vfio: pt && k.iommu ? k.nextVfio++ : null,
  };
  if (!s.audio) return { pf, audio: null };
  const audio: SimFn = {
    addr: `0000:${bus}:00.1`,
    bus,
    deviceId: model.audioDeviceId ?? '22ba',
    subsystemDeviceId: model.subsystemDeviceId,
    classCode: '040300',
    revision: 'a1',
    driver: pt ? (k.iommu ? 'vfio-pci' : null) : 'snd_hda_intel',
    override: pt ? 'vfio-pci' : null,
    group,
    numa,
    kind: 'audio',
    gpu,
    vfio: pt && k.iommu ? k.nextVfio++ : null,
  };
  return { pf, audio };
}

/** SR-IOV vGPU: VFs on (unless the spec says not), the profiles' types written on the first VFs in order. */
function configureSriov(k: SimKernel, gpu: SimGpu, gs: SimGpuSpec): void {
  const { model, pf } = gpu;
  if (model.framework !== 'sriov') throw new InputError(`simulator: ${model.key} uses mdev vGPU, not SR-IOV vGPU; use --mode mdev-vgpu`);
  if (gs.vfsEnabled ?? true) k.enableVfs(gpu, model.totalVfs);
  migFor(gpu, gs.profiles ?? []);
  for (const [i, p] of (gs.profiles ?? []).entries()) {
    const vf = gpu.vfs[i];
    const t = typeByProfile(gpu, p);
    if (!vf) throw new InputError(`simulator: ${model.key} has ${gpu.vfs.length} VFs enabled; cannot configure profile #${i + 1}`);
    if (!creatable(gpu, vf).includes(t)) throw new InputError(`simulator: ${p} does not fit on ${pf.addr} after ${i} profiles`);
    vf.typeId = t.id;
    vf.gi = roomFor(gpu, t)?.id ?? null;
  }
}

/** mdev vGPU: VFs on where the mdevs live on them (Ampere), one mdev per profile on the first parent with room. */
function configureMdev(k: SimKernel, gpu: SimGpu, gs: SimGpuSpec): void {
  const { model, pf } = gpu;
  if (model.framework !== 'mdev') throw new InputError(`simulator: ${model.key} uses SR-IOV vGPU, not mdev; use --mode sriov-vgpu`);
  if (gpu.mdevOnVfs && (gs.vfsEnabled ?? true)) k.enableVfs(gpu, model.totalVfs);
  migFor(gpu, gs.profiles ?? []);
  for (const [i, p] of (gs.profiles ?? []).entries()) {
    const t = typeByProfile(gpu, p);
    const parent = mdevParents(gpu, k.vgpuHostDriver).find((x) => availableInstances(gpu, t, x) > 0);
    if (!parent) throw new InputError(`simulator: ${p} does not fit on ${pf.addr} after ${i} instances`);
    k.addMdev(gpu, parent, t, deterministicUuid(`${pf.addr}/${i}`));
  }
}

/** Profiles given at creation that are MIG-backed: MIG mode on, and the GPU instances they need (as vmgpu would place them). */
function migFor(gpu: SimGpu, profiles: string[]): void {
  const types = profiles.map((p) => typeByProfile(gpu, p)).filter((t) => t.migBacked);
  if (!gpu.mig || types.length === 0) return;
  const g = gpu.mig.geometry;
  const need = types.map((t) => instanceProfileFor(g, t.profile)!).filter((x, i, all) => g.vgpusPerInstance === 'one' || all.indexOf(x) === i);
  const starts = placeInstances(g, [], need);
  if (!starts) throw new Error(`simulator: ${profiles.join(', ')} do not fit the MIG geometry of ${gpu.model.key}`);
  gpu.mig.current = gpu.mig.pending = true;
  need.forEach((x, i) => gpu.mig!.create(x.name, starts[i]!, 'simulator'));
}

/** A UUID derived from a string (for the simulator's pre-created instances). */
function deterministicUuid(seed: string): string {
  const h = createHash('sha256').update(`vmgpu-sim/${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
