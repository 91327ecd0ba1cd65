/**
 * MIG for one GPU: the mode its requests need (MIG-backed profiles: on;
 * time-sliced: off), the GPU instances the MIG-backed ones need, placed as the
 * card's geometry allows, and which of the instances there now stay. sriov.ts
 * and mdev.ts call it once the requests are checked and weave its actions
 * around theirs: vGPU clears, then `teardown` (destroy instances, disable VFs,
 * switch the mode), VFs enabled (which wipes instances), `build` (create
 * instances), then the vGPUs.
 *
 * Never touched: an instance a VM's vGPU sits on. A switch of mode waits for
 * every vGPU to go; a geometry that cannot be built beside held instances
 * waits; one the card cannot hold at all is an error. When the mode or the
 * instances cannot be read, or a vGPU's instance is unknown where one would
 * be destroyed, the GPU is left as it is (undetermined).
 */
import { describeInstances, instanceProfileFor, placeInstances, vgpusPerInstance, type GpuInstanceProfile, type MigGeometry } from '../model/mig.js';
import { parseProfile, stripVendorPrefix } from '../model/profile.js';
import type { GpuInstance } from '../inventory/types.js';
import { boardOf } from './facts.js';
import type { GpuPlan } from './gpu-plan.js';
import type { Wanted } from './requests.js';
import type { Action } from './types.js';

export interface MigPlan {
  /** The mode switches: no vGPU on the GPU stays. */
  switching: boolean;
  /** vGPUs (VF addresses, mdev UUIDs) that cannot stay because their instance goes. */
  doomed: ReadonlySet<string>;
  /** After the vGPU clears: destroy instances, disable VFs, switch the mode. */
  teardown: Action[];
  /** The VFs are off before the vGPUs are made (now, or after teardown): enable them first. */
  vfsOff: boolean;
  /** After the VFs are enabled: create instances. */
  build: Action[];
}

const FIX_UNREAD = "make the host driver's nvidia-smi reachable to vmgpu (the Helm chart mounts it from agent.driverRoot): MIG mode and GPU instances are read with nvidia-smi";

/** A configured vGPU on the GPU: where it is, what holds it, the instance it sits on. */
interface Placed {
  device: string;
  gi: number | null;
  held: boolean;
  migBacked: boolean;
}

function configured(p: GpuPlan): Placed[] {
  const g = p.gpu;
  const migOf = (profile: string | null) => (profile ? (parseProfile(profile)?.gpuInstanceSlices ?? null) !== null : false);
  const vfs = g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => ({ device: v.address, gi: v.gpuInstanceId, held: p.inUse.has(v.address), migBacked: migOf(v.currentProfile) }));
  const mdevs = g.mdevParents.flatMap((m) => m.instances).map((i) => ({ device: i.uuid, gi: i.gpuInstanceId, held: p.inUse.has(i.uuid), migBacked: migOf(i.typeName ? stripVendorPrefix(i.typeName) : null) }));
  return [...vfs, ...mdevs];
}

/** What the GPU's MIG state must become for `wanted`, or null when nothing more may be planned on it (recorded on `p`). */
export function planMig(p: GpuPlan, wanted: Map<string, Wanted>): MigPlan | null {
  const vfsOn = (p.gpu.pci.sriov?.numVfs ?? 0) > 0 || p.gpu.vfs.length > 0;
  const none: MigPlan = { switching: false, doomed: new Set(), teardown: [], vfsOff: !vfsOn, build: [] };
  const geometry = boardOf(p.gpu)?.mig;
  const list = [...wanted.values()];
  const wantMig = list.some((w) => w.facts.migBacked);
  if (!geometry) {
    if (wantMig) p.error(`vmgpu does not know the MIG geometry of ${p.gpu.model.name} (${p.address}), so it cannot make the GPU instances ${list.map((w) => w.facts.profile).join(', ')} need`);
    return wantMig ? null : none;
  }
  const needs = wantMig ? instancesNeeded(p, geometry, list) : [];
  if (!needs) return null;
  if (list.length === 0) return none;
  // Off the vGPU manager (passed through, or on no driver) nvidia-smi cannot see the GPU, and no vGPU can
  // sit on an instance of it: plan as on a fresh card. Every MIG step reads the mode and instances again first.
  const offHost = p.gpu.framework === 'passthrough' || p.gpu.pci.driver === null;
  const state = p.gpu.mig ?? (offHost ? { current: false, pending: false, instances: [] } : null);
  if (!state) {
    p.undetermine(p.address, `the MIG mode and GPU instances of ${p.address} cannot be read, and its profiles need MIG mode ${wantMig ? 'on' : 'off'}`, FIX_UNREAD);
    return null;
  }
  const on = configured(p);
  if (state.current !== wantMig) return switchMode(p, geometry, wantMig, needs, on, vfsOn, state.instances);
  if (!wantMig) return none;
  return reconcile(p, geometry, needs, on, vfsOn, state.instances);
}

/** The instances `list` needs; null after an error when the card cannot hold them (positioned at the entry). */
function instancesNeeded(p: GpuPlan, geometry: MigGeometry, list: Wanted[]): GpuInstanceProfile[] | null {
  const groups = new Map<string, { gip: GpuInstanceProfile; count: number; per: number }>();
  for (const w of list) {
    const gip = instanceProfileFor(geometry, w.facts.profile);
    if (!gip) {
      p.error(`vmgpu does not know which GPU instance profile ${w.facts.profile} needs on ${p.gpu.model.name} (its profiles: ${geometry.profiles.map((x) => x.name).join(', ')})`);
      return null;
    }
    // On boards whose vGPUs share instances, one instance holds vGPUs of one size.
    const key = `${gip.name}/${w.facts.framebufferMiB}`;
    const per = vgpusPerInstance(geometry, { profile: w.facts.profile, maxInstances: w.facts.maxInstances ?? 1 });
    const g = groups.get(key) ?? { gip, count: 0, per };
    g.count += w.count;
    groups.set(key, g);
  }
  const needs = [...groups.values()].flatMap((g) => Array.from({ length: Math.ceil(g.count / g.per) }, () => g.gip));
  if (placeInstances(geometry, [], needs) === null) {
    const asked = list.map((w) => `${w.count} x ${w.facts.profile}`).join(' + ');
    p.error(`${asked} needs GPU instances ${describeInstances(needs)}, which ${p.gpu.model.name} cannot hold together (${geometry.slots} memory slots; see \`nvidia-smi mig -lgipp\` for the placements): ask for fewer or smaller MIG-backed vGPUs`);
    return null;
  }
  return needs;
}

const create = (p: GpuPlan, gip: GpuInstanceProfile, start: number): Action => ({ kind: 'create-gpu-instance', gpu: p.address, profile: gip.name, profileId: gip.id, start });
const destroy = (p: GpuPlan, i: GpuInstance): Action => ({ kind: 'destroy-gpu-instance', gpu: p.address, instanceId: i.id, profile: i.profile, start: i.start });

/** Switch the mode: every vGPU goes first (a VM's makes it wait), then instances, VFs, the mode; then the new instances. */
function switchMode(p: GpuPlan, geometry: MigGeometry, want: boolean, needs: GpuInstanceProfile[], on: Placed[], vfsOn: boolean, instances: GpuInstance[]): MigPlan | null {
  const held = on.filter((x) => x.held);
  for (const x of held) p.waitForTarget(x.device, `turn MIG mode ${want ? 'on' : 'off'} on ${p.address}`, `the switch needs every vGPU on the GPU gone; in use: ${p.inUse.get(x.device)}`);
  if (held.length) return null;
  const teardown: Action[] = instances.map((i) => destroy(p, i));
  if (vfsOn) teardown.push({ kind: 'disable-vfs', gpu: p.address });
  teardown.push({ kind: 'set-mig-mode', gpu: p.address, enabled: want });
  const starts = placeInstances(geometry, [], needs)!;
  return { switching: true, doomed: new Set(on.map((x) => x.device)), teardown, vfsOff: true, build: needs.map((gip, i) => create(p, gip, starts[i]!)) };
}

/**
 * MIG mode stays on: keep the instances VMs' vGPUs sit on, reuse others of a
 * needed profile where the rest still fits beside them, destroy the others.
 */
function reconcile(p: GpuPlan, geometry: MigGeometry, needs: GpuInstanceProfile[], on: Placed[], vfsOn: boolean, instances: GpuInstance[]): MigPlan | null {
  // Enabling the VFs wipes every instance: with them off, start from nothing.
  if (!vfsOn) {
    const starts = placeInstances(geometry, [], needs)!;
    return { switching: false, doomed: new Set(), teardown: instances.map((i) => destroy(p, i)), vfsOff: true, build: needs.map((gip, i) => create(p, gip, starts[i]!)) };
  }
  const heldGis = new Set(on.filter((x) => x.held && x.gi !== null).map((x) => x.gi!));
  const layout = chooseKept(geometry, needs, instances, heldGis, on) ?? chooseKept(geometry, needs, instances, heldGis, on, true);
  if (!layout) {
    p.waitForTarget(p.address, `create GPU instances ${describeInstances(needs)} on ${p.address}`, 'waits for in-use vGPUs to be released: the GPU instances they sit on are in the way');
    return null;
  }
  const gone = instances.filter((i) => !layout.kept.includes(i));
  if (gone.length && on.some((x) => x.migBacked && x.gi === null)) {
    p.undetermine(p.address, `a vGPU on ${p.address} sits on a GPU instance vmgpu cannot read (nvidia/gpu_instance_id), and GPU instances would be destroyed`, 'check that the vGPU manager driver exposes nvidia/gpu_instance_id for each vGPU; vmgpu never destroys a GPU instance a vGPU may sit on');
    return null;
  }
  const goneIds = new Set(gone.map((i) => i.id));
  const doomed = new Set(on.filter((x) => x.gi !== null && goneIds.has(x.gi)).map((x) => x.device));
  return { switching: false, doomed, teardown: gone.map((i) => destroy(p, i)), vfsOff: false, build: layout.create.map(({ gip, start }) => create(p, gip, start)) };
}

interface Layout {
  kept: GpuInstance[];
  create: { gip: GpuInstanceProfile; start: number }[];
}

/**
 * Match existing instances to the needs (held ones always stay; with
 * `heldOnly`, no others are reused) and place the unmatched needs beside
 * them; null when they do not fit.
 */
function chooseKept(geometry: MigGeometry, needs: GpuInstanceProfile[], instances: GpuInstance[], heldGis: Set<number>, on: Placed[], heldOnly = false): Layout | null {
  const hosting = (i: GpuInstance) => Number(on.some((x) => x.gi === i.id));
  const order = [...instances].sort((a, b) => Number(heldGis.has(b.id)) - Number(heldGis.has(a.id)) || hosting(b) - hosting(a) || a.start - b.start);
  const kept: GpuInstance[] = instances.filter((i) => heldGis.has(i.id));
  const open = [...needs];
  for (const i of order) {
    const k = open.findIndex((gip) => gip.name === i.profile);
    if (k < 0) continue;
    if (!heldGis.has(i.id) && heldOnly) continue;
    open.splice(k, 1);
    if (!kept.includes(i)) kept.push(i);
  }
  const starts = placeInstances(geometry, kept.map((i) => ({ profile: i.profile, start: i.start })), open);
  return starts ? { kept, create: open.map((gip, n) => ({ gip, start: starts[n]! })) } : null;
}
