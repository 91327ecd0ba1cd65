/**
 * A simulated node's state as plain data (for `vmgpu --simulate DIR`, saved by
 * persist.ts): what the spec does not say — bindings, VFs and their types,
 * mdevs, MIG, held devices, removed device nodes and the numbering counters.
 * Restoring builds the hardware from the spec, unconfigured, and lays the
 * state over it.
 */
import { parseHeldDevice, type SimKernel } from './kernel.js';
import type { SimMigState } from './mig.js';
import type { SimFn, SimGpu, SimNodeSpec } from './state.js';

interface FnState {
  addr: string;
  driver: string | null;
  override: string | null;
  group: number | null;
  vfio: number | null;
}

interface GpuState {
  pf: FnState;
  audio: FnState | null;
  vfs: { fn: FnState; index: number; typeId: number; params: string; gi?: number | null }[];
  heterogeneous: boolean;
  present: boolean;
  mdevs: { uuid: string; parent: string; typeId: number; group: number; params: string; gi?: number | null }[];
  mig?: SimMigState | null;
}

export interface SimState {
  version: 1;
  spec: SimNodeSpec;
  gpus: GpuState[];
  held: string[];
  removedDevNodes: string[];
  nextGroup: number;
  nextVfio: number;
}

const fnState = (f: SimFn): FnState => ({ addr: f.addr, driver: f.driver, override: f.override, group: f.group, vfio: f.vfio });

export function snapshotState(spec: SimNodeSpec, k: SimKernel): SimState {
  return {
    version: 1,
    spec,
    gpus: k.gpus.map((g) => ({
      pf: fnState(g.pf),
      audio: g.audio ? fnState(g.audio) : null,
      vfs: g.vfs.map((v) => ({ fn: fnState(v.fn), index: v.index, typeId: v.typeId, params: v.params, gi: v.gi })),
      heterogeneous: g.heterogeneous,
      present: g.present,
      mdevs: [...g.mdevs.values()].map((m) => ({ uuid: m.uuid, parent: m.parent.addr, typeId: m.type.id, group: m.group, params: m.params, gi: m.gi })),
      mig: g.mig?.state() ?? null,
    })),
    held: [...k.held],
    removedDevNodes: [...k.removedDevNodes],
    nextGroup: k.nextGroup,
    nextVfio: k.nextVfio,
  };
}

export function checkStateVersion(state: SimState): void {
  if (state?.version !== 1) throw new Error('simulator state: unsupported or missing version');
}

/** The spec's hardware without what it configures (profiles, VFs): a state is laid over it. */
export function unconfigured(spec: SimNodeSpec): SimNodeSpec {
  return { ...spec, gpus: spec.gpus.map((g) => ({ ...g, profiles: [], vfsEnabled: false })) };
}

/** Lay a state over a kernel created from `unconfigured(state.spec)`. */
export function restoreState(k: SimKernel, state: SimState): void {
  for (const [i, gs] of state.gpus.entries()) {
    const g = k.gpus[i];
    if (!g || g.pf.addr !== gs.pf.addr) throw new Error(`simulator state: GPU #${i} does not match the spec`);
    restoreGpu(g, gs);
  }
  // Names from a file: checked like any other (a state file can be handed to us).
  k.held = new Set(state.held.map(parseHeldDevice));
  k.removedDevNodes = new Set(state.removedDevNodes);
  k.nextGroup = state.nextGroup;
  k.nextVfio = state.nextVfio;
}

function restoreGpu(g: SimGpu, gs: GpuState): void {
  const apply = (f: SimFn, s: FnState) => Object.assign(f, { driver: s.driver, override: s.override, group: s.group, vfio: s.vfio });
  apply(g.pf, gs.pf);
  if (g.audio && gs.audio) apply(g.audio, gs.audio);
  g.vfs = gs.vfs.map((v) => ({ index: v.index, typeId: v.typeId, params: v.params, gi: v.gi ?? null, fn: { ...g.pf, kind: 'vf' as const, gpu: g, addr: v.fn.addr, driver: v.fn.driver, override: v.fn.override, group: v.fn.group, vfio: v.fn.vfio } }));
  g.heterogeneous = gs.heterogeneous;
  g.present = gs.present;
  g.mdevs.clear();
  for (const m of gs.mdevs) {
    const parent = m.parent === g.pf.addr ? g.pf : g.vfs.find((v) => v.fn.addr === m.parent)?.fn;
    const type = g.types.find((t) => t.id === m.typeId);
    if (!parent || !type) throw new Error(`simulator state: mdev ${m.uuid} has an unknown parent or type`);
    g.mdevs.set(m.uuid, { uuid: m.uuid, gpu: g, parent, type, group: m.group, params: m.params, gi: m.gi ?? null });
  }
  if (g.mig && gs.mig) g.mig.restore(gs.mig);
}
