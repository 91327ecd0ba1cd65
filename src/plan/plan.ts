/**
 * The planner: a pure function (inventory, config, in-use set) -> Plan.
 *
 * Minimal diff: every vGPU that already matches stays; nothing is deleted to
 * be recreated. Placement is deterministic (explicit placement first, then
 * existing matches, then the lowest free function). The whole desired state
 * is checked against capacity before anything is planned, so a plan with
 * errors is never applied. Devices in use by VMs are never touched: the
 * changes they would need are reported as blocked.
 */
import { createHash } from 'node:crypto';
import type { Gpu, Inventory, VgpuType } from '../inventory/types.js';
import { boardForDevice, profileFact, stripVendorPrefix } from '../inventory/profiles.js';
import type { ConfigEntry, ConfigFile, NamedConfig } from '../spec/config.js';
import { assignGpus, gpuIdentity } from '../spec/match.js';
import { didYouMean } from '../spec/suggest.js';
import { vfAddress } from '../sysfs/names.js';
import type { Action, Blocked, GpuOutcome, InUse, Plan, PlanError } from './types.js';

export interface PlanOptions {
  /** Node identity (Kubernetes node name or host name): part of every mdev UUID vmgpu creates. */
  nodeId: string;
  /** Devices in use by VMs (address or mdev UUID -> who holds it). */
  inUse?: InUse;
  /** The VFIO driver for a GPU's passthrough (a vendor variant from modules.alias, else vfio-pci). */
  vfioDriverFor?: (gpu: Gpu) => string;
}

/** What vmgpu knows about a profile on one GPU. */
interface Facts {
  profile: string;
  framebufferMiB: number | null;
  maxInstances: number | null;
  series: string;
  migBacked: boolean;
}

export function plan(inv: Inventory, file: ConfigFile, config: NamedConfig, opts: PlanOptions): Plan {
  const p = new Planner(inv, file, opts);
  p.run(config.entries);
  return { configName: config.name, actions: p.actions, blocked: p.blocked, errors: p.errors, gpus: p.outcomes };
}

/** A UUID that is the same for the same node, parent and slot: a VM's vGPU keeps it across reboots and re-applies. */
export function stableMdevUuid(nodeId: string, parent: string, slot: number): string {
  const h = createHash('sha256').update(`vmgpu-mdev/${nodeId}/${parent}/${slot}`).digest('hex');
  // RFC 9562 version 8 (custom), variant 10xx.
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** `k=v,k2=v2` in the config's key order. */
export function formatParams(params: Record<string, string> | undefined): string | null {
  if (!params) return null;
  return Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

class Planner {
  actions: Action[] = [];
  blocked: Blocked[] = [];
  errors: PlanError[] = [];
  outcomes: GpuOutcome[] = [];
  private readonly inUse: InUse;

  constructor(
    private readonly inv: Inventory,
    private readonly file: ConfigFile,
    private readonly opts: PlanOptions,
  ) {
    this.inUse = opts.inUse ?? new Map();
  }

  private where(e: ConfigEntry): string {
    return `${this.file.filename}:${e.line}:${e.column}: ${e.path}`;
  }

  private error(e: ConfigEntry | null, gpu: string | null, message: string): void {
    this.errors.push({ gpu, where: e ? this.where(e) : this.file.filename, message });
  }

  run(entries: ConfigEntry[]): void {
    const gpus = this.inv.gpus;
    const assignment = assignGpus(entries, gpus.map(gpuIdentity));
    for (const p of assignment.problems) {
      this.errors.push({ gpu: null, where: `${this.file.filename}:${p.line}:${p.column}: ${p.path}`, message: p.message });
    }
    const owner = new Map<string, ConfigEntry>();
    for (const a of assignment.assigned) owner.set(a.gpu.address, a.entry);
    for (const g of gpus) {
      const e = owner.get(g.pci.address);
      if (!e) {
        this.outcomes.push({ gpu: g.pci.address, model: g.model.name, mode: 'untouched', want: {}, kept: 0 });
        continue;
      }
      const errorsBefore = this.errors.length;
      const actions: Action[] = [];
      const outcome: GpuOutcome = { gpu: g.pci.address, model: g.model.name, mode: e.mode, want: {}, kept: 0 };
      for (const r of e.vgpuDevices) outcome.want[r.profile] = (outcome.want[r.profile] ?? 0) + r.count;
      if (e.mode === 'passthrough') this.planPassthrough(g, e, actions);
      else if (e.mode === 'host') this.planHost(g, e, actions);
      else this.planVgpu(g, e, actions, outcome);
      this.outcomes.push(outcome);
      if (this.errors.length === errorsBefore) this.actions.push(...actions);
    }
    // Never apply part of an invalid config.
    if (this.errors.length) this.actions = [];
  }

  // ---------------------------------------------------------------- facts

  private facts(g: Gpu, profile: string): Facts | undefined {
    const cat: VgpuType | undefined = g.catalog.find((t) => t.profile === profile);
    const board = boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId);
    const fact = board?.profiles.find((f) => f.profile === profile) ?? (board ? undefined : profileFact(profile));
    if (!cat && !fact) return undefined;
    return {
      profile,
      framebufferMiB: cat?.framebufferMiB ?? fact?.framebufferMiB ?? null,
      maxInstances: cat?.maxInstances ?? fact?.maxInstances ?? null,
      series: fact?.series ?? cat?.series ?? 'unknown',
      migBacked: fact?.migBacked ?? cat?.migBacked ?? false,
    };
  }

  private knownProfiles(g: Gpu): string[] {
    const board = boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId);
    return [...new Set([...(board?.profiles.map((f) => f.profile) ?? []), ...g.catalog.map((t) => t.profile)])];
  }

  private boardFramebuffer(g: Gpu): number | null {
    return boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId)?.framebufferMiB ?? null;
  }

  /** Validate the requested vGPUs against the GPU alone (ignoring what is on it now). */
  private validateRequests(g: Gpu, e: ConfigEntry, slots: number, oneTypeOnly: boolean): Map<string, { count: number; facts: Facts }> | null {
    const wanted = new Map<string, { count: number; facts: Facts }>();
    let ok = true;
    const known = this.knownProfiles(g);
    for (const r of e.vgpuDevices) {
      const f = this.facts(g, r.profile);
      if (!f) {
        const board = g.model.profileBoard;
        const other = boardForDevice(g.pci.deviceId) && stripVendorPrefix(r.profile).split('-')[0] !== board;
        this.error(
          e,
          g.pci.address,
          `${r.original} is not a vGPU profile of ${g.model.name} (${g.pci.address})${other && board ? `; its profiles start with ${board}-` : ''}.${didYouMean(r.profile, known)}`,
        );
        ok = false;
        continue;
      }
      const have = wanted.get(r.profile);
      wanted.set(r.profile, { count: (have?.count ?? 0) + r.count, facts: f });
    }
    if (!ok) return null;
    const list = [...wanted.values()];
    const total = list.reduce((n, w) => n + w.count, 0);
    for (const w of list) {
      if (w.facts.maxInstances !== null && w.count > w.facts.maxInstances) {
        this.error(e, g.pci.address, `${w.count} x ${w.facts.profile} on ${g.pci.address}: at most ${w.facts.maxInstances} fit on one ${g.model.name}`);
        ok = false;
      }
    }
    if (total > slots) {
      this.error(e, g.pci.address, `${total} vGPUs requested on ${g.pci.address} but ${g.model.name} offers ${slots} ${oneTypeOnly ? 'instances' : 'VFs'} (sriov_totalvfs)`);
      ok = false;
    }
    const fb = this.boardFramebuffer(g);
    const used = list.reduce((n, w) => n + (w.facts.framebufferMiB ?? 0) * w.count, 0);
    if (fb !== null && used > fb) {
      this.error(e, g.pci.address, `${list.map((w) => `${w.count} x ${w.facts.profile}`).join(' + ')} needs ${Math.round(used / 1024)} GB of framebuffer; ${g.model.name} (${g.pci.address}) has ${Math.round(fb / 1024)} GB`);
      ok = false;
    }
    if (list.length > 1) {
      if (list.some((w) => w.facts.migBacked) && list.some((w) => !w.facts.migBacked)) {
        this.error(e, g.pci.address, `time-sliced and MIG-backed vGPUs cannot share a GPU (${list.map((w) => w.facts.profile).join(', ')} on ${g.pci.address})`);
        ok = false;
      } else if (new Set(list.map((w) => w.facts.series)).size > 1) {
        this.error(e, g.pci.address, `vGPUs of different series cannot share a GPU (${list.map((w) => w.facts.profile).join(', ')} on ${g.pci.address}); use one of Q, B, A or C per GPU`);
        ok = false;
      } else if (oneTypeOnly) {
        this.error(e, g.pci.address, `${g.model.name} (${g.pci.address}) takes one vGPU type per GPU; requested ${list.map((w) => w.facts.profile).join(' and ')}`);
        ok = false;
      } else if (!list[0]!.facts.migBacked && !(e.mixedSizes ?? g.heterogeneousMode ?? false)) {
        this.error(
          e,
          g.pci.address,
          `mixing ${list.map((w) => w.facts.profile).join(' and ')} on ${g.pci.address} needs mixed-size vGPU mode, which is off: add \`mixed-sizes: true\` to this entry (vmgpu then runs \`nvidia-smi vgpu -shm 1\` before the first vGPU is created)`,
        );
        ok = false;
      }
    }
    return ok ? wanted : null;
  }

  // ---------------------------------------------------------------- modes

  private planHost(g: Gpu, e: ConfigEntry, actions: Action[]): void {
    if (e.vgpuDevices.length) this.error(e, g.pci.address, 'mode host takes no vgpu-devices');
    // The GPU and its companions (audio) go back to their host drivers, also after an interrupted run left one behind.
    this.returnFromVfio(g, actions);
    if (g.framework === 'passthrough' || g.pci.driver === null) return;
    for (const v of g.vfs) {
      if (v.currentTypeId === 0) continue;
      const change: Action = { kind: 'clear-vf-type', gpu: g.pci.address, vf: v.address, vfIndex: v.index, typeId: v.currentTypeId, profile: v.currentProfile };
      if (!this.blockIfInUse(g, v.address, change)) actions.push(change);
    }
    for (const p of g.mdevParents) {
      for (const i of p.instances) {
        const change: Action = { kind: 'remove-mdev', gpu: g.pci.address, uuid: i.uuid, parent: p.address, profile: i.typeName ? stripVendorPrefix(i.typeName) : null };
        if (!this.blockIfInUse(g, i.uuid, change)) actions.push(change);
      }
    }
  }

  private planPassthrough(g: Gpu, e: ConfigEntry, actions: Action[]): void {
    if (e.vgpuDevices.length) this.error(e, g.pci.address, 'mode passthrough takes no vgpu-devices: the whole GPU goes to one VM');
    if (!g.capabilities.passthrough.usable) {
      this.error(e, g.pci.address, `${g.model.name} (${g.pci.address}) cannot be passed through: ${g.capabilities.passthrough.reason}`);
      return;
    }
    const driver = this.opts.vfioDriverFor?.(g) ?? 'vfio-pci';
    const members = [g.pci.address, ...g.companions];
    // vGPUs on the GPU must go first; unbinding the PF takes its VFs with it.
    const vgpus = [...g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => v.address), ...g.mdevParents.flatMap((p) => p.instances.map((i) => i.uuid))];
    const held = vgpus.filter((d) => this.inUse.has(d));
    if (held.length) {
      for (const d of held) this.blocked.push({ gpu: g.pci.address, device: d, change: `pass ${g.pci.address} through`, reason: `in use: ${this.inUse.get(d)}` });
      return;
    }
    for (const m of members) {
      const fn = m === g.pci.address ? g.pci : this.inv.otherFunctions.find((f) => f.address === m);
      const current = fn?.driver ?? null;
      const target = m === g.pci.address ? driver : 'vfio-pci';
      if (current === target) continue;
      const change: Action = { kind: 'bind-vfio', gpu: g.pci.address, device: m, driver: target, from: current };
      if (!this.blockIfInUse(g, m, change)) actions.push(change);
    }
  }

  /** Give the GPU and its companions back to their host drivers: from a VFIO driver, or from no driver at all (a bind or unbind interrupted half-way). */
  private returnFromVfio(g: Gpu, actions: Action[]): void {
    for (const m of [g.pci.address, ...g.companions]) {
      const fn = m === g.pci.address ? g.pci : this.inv.otherFunctions.find((f) => f.address === m);
      if (!fn || (fn.driver && !/vfio/.test(fn.driver))) continue;
      const change: Action = { kind: 'unbind-vfio', gpu: g.pci.address, device: m, from: fn.driver };
      if (!this.blockIfInUse(g, m, change)) actions.push(change);
    }
  }

  private planVgpu(g: Gpu, e: ConfigEntry, actions: Action[], outcome: GpuOutcome): void {
    // Passed through, or left on no driver by an interrupted bind/unbind: give it back to the vGPU manager first.
    const offHost = g.framework === 'passthrough' || g.pci.driver === null;
    if (!g.capabilities.vgpu.usable && !offHost) {
      this.error(e, g.pci.address, `${g.model.name} (${g.pci.address}) cannot host vGPUs: ${g.capabilities.vgpu.reason}`);
      return;
    }
    if (offHost) {
      if (!this.inv.node.vgpuHostDriver) {
        this.error(e, g.pci.address, `${g.pci.address} is ${g.framework === 'passthrough' ? 'passed through' : 'bound to no driver'} and this node has no NVIDIA vGPU manager driver to host vGPUs`);
        return;
      }
      if (this.inUse.has(g.pci.address)) {
        // Blocked now, but a request that could never fit is still an error.
        const board = boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId);
        const oneType = g.model.vgpuFramework === 'mdev';
        const slots = g.model.vgpuFramework === 'sriov' || board?.mdevOnVfs ? (g.pci.sriov?.totalVfs ?? 0) : Number.MAX_SAFE_INTEGER;
        if (!this.validateRequests(g, e, slots, oneType)) return;
        this.blocked.push({ gpu: g.pci.address, device: g.pci.address, change: 'return the GPU to the vGPU manager', reason: `in use: ${this.inUse.get(g.pci.address)}` });
        return;
      }
    }
    // Also when only a companion (audio) is still on vfio-pci after an interrupted return.
    this.returnFromVfio(g, actions);
    if (g.model.vgpuFramework === 'sriov') this.planSriov(g, e, actions, outcome);
    else if (g.model.vgpuFramework === 'mdev') this.planMdev(g, e, actions, outcome);
    else this.error(e, g.pci.address, `${g.model.name} (${g.pci.address}) is not a vGPU model vmgpu knows`);
  }

  // ---------------------------------------------------------------- SR-IOV vGPU

  private planSriov(g: Gpu, e: ConfigEntry, actions: Action[], outcome: GpuOutcome): void {
    const sriov = g.pci.sriov;
    if (!sriov) {
      this.error(e, g.pci.address, `${g.pci.address} exposes no SR-IOV capability (sriov_totalvfs is missing)`);
      return;
    }
    const wanted = this.validateRequests(g, e, sriov.totalVfs, false);
    if (!wanted) return;
    const total = sriov.totalVfs;
    for (const [profile, idxs] of Object.entries(e.vfPlacement)) {
      const w = wanted.get(stripVendorPrefix(profile));
      if (!w) {
        this.error(e, g.pci.address, `vf-placement names ${profile}, which vgpu-devices does not request`);
        continue;
      }
      if (idxs.length > w.count) this.error(e, g.pci.address, `vf-placement gives ${idxs.length} VFs for ${profile} but only ${w.count} are requested`);
      for (const i of idxs) if (i >= total) this.error(e, g.pci.address, `vf-placement: VF index ${i} is out of range; ${g.model.name} has VFs 0-${total - 1}`);
    }
    const seenIdx = new Map<number, string>();
    for (const [profile, idxs] of Object.entries(e.vfPlacement)) {
      for (const i of idxs) {
        const prev = seenIdx.get(i);
        if (prev) this.error(e, g.pci.address, `vf-placement puts both ${prev} and ${profile} on VF ${i}`);
        seenIdx.set(i, profile);
      }
    }
    if (this.errors.some((x) => x.gpu === g.pci.address)) return;

    // The VFs as they are, or as they will be once enabled.
    const enabled = g.vfs.length > 0;
    type Slot = { index: number; address: string; profile: string | null; typeId: number; params: string | null; target: string | null; kept: boolean };
    let slots: Slot[];
    if (enabled) {
      slots = g.vfs.map((v) => ({ index: v.index, address: v.address, profile: v.currentProfile, typeId: v.currentTypeId, params: v.vgpuParams, target: null, kept: false }));
    } else {
      if (sriov.offset === null || sriov.stride === null) {
        this.error(e, g.pci.address, `${g.pci.address} reports no sriov_offset/sriov_stride; cannot tell its VF addresses`);
        return;
      }
      slots = [];
      for (let i = 0; i < total; i++) slots.push({ index: i, address: vfAddress(g.pci.address, sriov.offset, sriov.stride, i), profile: null, typeId: 0, params: null, target: null, kept: false });
    }
    const requested = [...wanted.values()].reduce((n, w) => n + w.count, 0);
    if (enabled && requested > slots.length) {
      this.error(e, g.pci.address, `${requested} vGPUs requested but only ${slots.length} of ${total} VFs are enabled on ${g.pci.address}; disable the VFs (write 0 to sriov_numvfs) so vmgpu can enable all of them`);
      return;
    }

    const remaining = new Map([...wanted].map(([p, w]) => [p, w.count]));
    const held = (s: Slot) => this.inUse.has(s.address);
    // 1. VFs in use keep what they have.
    for (const s of slots.filter(held)) {
      if (s.typeId === 0) continue;
      const left = s.profile ? (remaining.get(s.profile) ?? 0) : 0;
      if (s.profile && left > 0) {
        s.target = s.profile;
        s.kept = true;
        remaining.set(s.profile, left - 1);
      }
    }
    // 2. Explicit placement.
    for (const [profile, idxs] of Object.entries(e.vfPlacement)) {
      const p = stripVendorPrefix(profile);
      for (const i of idxs) {
        const s = slots[i]!;
        if (s.target !== null) continue; // an in-use VF already keeps this profile
        if (held(s) && s.typeId !== 0 && s.profile !== p) {
          this.blocked.push({ gpu: g.pci.address, device: s.address, change: `set VF ${s.address} to ${p} (vf-placement)`, reason: `in use: ${this.inUse.get(s.address)}` });
          continue;
        }
        s.target = p;
        s.kept = s.profile === p && s.typeId !== 0;
        remaining.set(p, (remaining.get(p) ?? 0) - 1);
      }
    }
    // 3. Existing matches stay.
    for (const s of slots) {
      if (s.target !== null || s.typeId === 0 || !s.profile || held(s) || seenIdx.has(s.index)) continue;
      const left = remaining.get(s.profile) ?? 0;
      if (left > 0) {
        s.target = s.profile;
        s.kept = true;
        remaining.set(s.profile, left - 1);
      }
    }
    // 4. The rest on the lowest free VFs, then on VFs that will be cleared.
    const candidates = slots.filter((s) => s.target === null && !held(s) && !seenIdx.has(s.index)).sort((a, b) => (a.typeId === 0 ? 0 : 1) - (b.typeId === 0 ? 0 : 1) || a.index - b.index);
    for (const [profile] of wanted) {
      let left = remaining.get(profile) ?? 0;
      while (left > 0) {
        const s = candidates.shift();
        if (!s) break;
        s.target = profile;
        left--;
      }
      remaining.set(profile, left);
    }
    for (const [profile, left] of remaining) {
      if (left > 0) this.blocked.push({ gpu: g.pci.address, device: g.pci.address, change: `create ${left} more ${profile}`, reason: 'no free VF: the others are in use by VMs' });
    }

    // Capacity with what in-use VFs keep: the card's occupancy after the change.
    const occupied: Facts[] = [];
    for (const s of slots) {
      if (held(s) && s.typeId !== 0) {
        const f = s.profile ? this.facts(g, s.profile) : undefined;
        if (f) occupied.push(f);
      } else if (s.kept && s.target) occupied.push(wanted.get(s.target)!.facts);
    }
    const fb = this.boardFramebuffer(g);
    const mixed = e.mixedSizes ?? g.heterogeneousMode ?? false;
    const fits = (f: Facts): string | null => {
      if (occupied.some((o) => o.migBacked !== f.migBacked)) return 'time-sliced and MIG-backed vGPUs cannot share the GPU';
      if (!mixed && occupied.some((o) => o.profile !== f.profile)) return `the GPU keeps ${occupied.find((o) => o.profile !== f.profile)!.profile} and is not in mixed-size mode`;
      if (occupied.some((o) => o.series !== f.series)) return `the GPU keeps a ${occupied.find((o) => o.series !== f.series)!.profile}`;
      const same = occupied.filter((o) => o.profile === f.profile).length;
      if (f.maxInstances !== null && same >= f.maxInstances) return `${f.maxInstances} x ${f.profile} already there`;
      const used = occupied.reduce((n, o) => n + (o.framebufferMiB ?? 0), 0);
      if (fb !== null && f.framebufferMiB !== null && used + f.framebufferMiB > fb) return 'not enough framebuffer left';
      return null;
    };

    // Actions: enable VFs, clear, (mixed-size mode), set, params.
    const clears: Action[] = [];
    const sets: Action[] = [];
    const params: Action[] = [];
    for (const s of slots) {
      const paramsWanted = s.target ? formatParams(e.vgpuParams[s.target] ?? findParams(e, s.target)) : null;
      if (s.kept) {
        outcome.kept++;
        if (paramsWanted !== null && (s.params ?? '') !== paramsWanted) {
          const change: Action = { kind: 'set-vf-params', gpu: g.pci.address, vf: s.address, params: paramsWanted };
          if (!this.blockIfInUse(g, s.address, change)) params.push(change);
        }
        continue;
      }
      if (s.typeId !== 0) {
        const change: Action = { kind: 'clear-vf-type', gpu: g.pci.address, vf: s.address, vfIndex: s.index, typeId: s.typeId, profile: s.profile };
        if (this.blockIfInUse(g, s.address, change)) continue;
        clears.push(change);
      }
      if (s.target) {
        const f = wanted.get(s.target)!.facts;
        const why = fits(f);
        if (why) {
          this.blocked.push({ gpu: g.pci.address, device: s.address, change: `set VF ${s.address} to ${s.target}`, reason: `waits for in-use vGPUs to be released: ${why}` });
          continue;
        }
        occupied.push(f);
        sets.push({ kind: 'set-vf-type', gpu: g.pci.address, vf: s.address, vfIndex: s.index, profile: s.target });
        if (paramsWanted !== null && paramsWanted !== (s.params ?? '')) params.push({ kind: 'set-vf-params', gpu: g.pci.address, vf: s.address, params: paramsWanted });
      }
    }
    if (!enabled && sets.length) actions.push({ kind: 'enable-vfs', gpu: g.pci.address, count: total });
    actions.push(...clears);
    const wantMixed = e.mixedSizes;
    const enablingResetsMixed = !enabled && sets.length > 0; // sriov-manage resets the mode
    // With the VFs off and staying off there is no mode to set: enabling them later resets it anyway.
    const vfsStayOff = !enabled && sets.length === 0;
    if (wantMixed !== null && !vfsStayOff && (wantMixed !== (g.heterogeneousMode ?? false) || (enablingResetsMixed && wantMixed))) {
      const stays = slots.filter((s) => (s.kept || (held(s) && s.typeId !== 0)) && s.typeId !== 0);
      if (stays.length && wantMixed !== (g.heterogeneousMode ?? false)) {
        this.error(e, g.pci.address, `switching mixed-size mode ${wantMixed ? 'on' : 'off'} on ${g.pci.address} needs every vGPU on it cleared first, but ${stays.length} stay (${stays.map((s) => s.address).join(', ')}); remove them from the config first or change the mode later`);
        return;
      }
      if (!stays.length) actions.push({ kind: 'set-mixed-sizes', gpu: g.pci.address, enabled: wantMixed });
    }
    actions.push(...sets, ...params);
  }

  // ---------------------------------------------------------------- mdev vGPU

  private planMdev(g: Gpu, e: ConfigEntry, actions: Action[], outcome: GpuOutcome): void {
    const board = boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId);
    const onVfs = board?.mdevOnVfs ?? (g.pci.sriov !== null);
    const sriov = g.pci.sriov;
    // Parents now, or once VFs are enabled (Ampere).
    let parents: string[];
    let enable = false;
    if (onVfs) {
      if (!sriov) {
        this.error(e, g.pci.address, `${g.pci.address} should host mdevs on SR-IOV VFs but exposes no SR-IOV capability`);
        return;
      }
      if (sriov.vfs.length) parents = sriov.vfs;
      else {
        if (sriov.offset === null || sriov.stride === null) {
          this.error(e, g.pci.address, `${g.pci.address} reports no sriov_offset/sriov_stride; cannot tell its VF addresses`);
          return;
        }
        parents = Array.from({ length: sriov.totalVfs }, (_, i) => vfAddress(g.pci.address, sriov.offset!, sriov.stride!, i));
        enable = true;
      }
    } else {
      parents = [g.pci.address];
    }
    const slots = onVfs ? parents.length : Number.MAX_SAFE_INTEGER;
    const wanted = this.validateRequests(g, e, slots, true);
    if (!wanted) return;
    if (Object.keys(e.vfPlacement).length) this.error(e, g.pci.address, 'vf-placement applies to SR-IOV vGPU GPUs only');
    if (e.mixedSizes) this.error(e, g.pci.address, 'mixed-sizes applies to SR-IOV vGPU GPUs only');

    const instances = g.mdevParents.flatMap((p) => p.instances.map((i) => ({ ...i, profile: i.typeName ? stripVendorPrefix(i.typeName) : null })));
    const remaining = new Map([...wanted].map(([p, w]) => [p, w.count]));
    const keep = new Set<string>();
    // In-use instances first, then the others, each in a stable order.
    const ordered = [...instances].sort((a, b) => Number(this.inUse.has(b.uuid)) - Number(this.inUse.has(a.uuid)) || a.parent.localeCompare(b.parent) || a.uuid.localeCompare(b.uuid));
    for (const i of ordered) {
      const left = i.profile ? (remaining.get(i.profile) ?? 0) : 0;
      if (left > 0) {
        keep.add(i.uuid);
        remaining.set(i.profile!, left - 1);
      }
    }
    const occupied: Facts[] = [];
    const removes: Action[] = [];
    for (const i of instances) {
      if (keep.has(i.uuid)) {
        outcome.kept++;
        occupied.push(wanted.get(i.profile!)!.facts);
        const want = formatParams(e.vgpuParams[i.profile!] ?? findParams(e, i.profile!));
        if (want !== null && (i.vgpuParams ?? '') !== want) {
          const change: Action = { kind: 'set-mdev-params', gpu: g.pci.address, uuid: i.uuid, params: want };
          if (!this.blockIfInUse(g, i.uuid, change)) actions.push(change);
        }
        continue;
      }
      const change: Action = { kind: 'remove-mdev', gpu: g.pci.address, uuid: i.uuid, parent: i.parent, profile: i.profile };
      if (this.blockIfInUse(g, i.uuid, change)) {
        const f = i.profile ? this.facts(g, i.profile) : undefined;
        if (f) occupied.push(f);
        continue;
      }
      removes.push(change);
    }
    const stays = new Set(instances.filter((i) => keep.has(i.uuid) || this.inUse.has(i.uuid)).map((i) => i.uuid));
    const busyParents = new Set(instances.filter((i) => stays.has(i.uuid)).map((i) => i.parent));
    const usedUuids = new Set(stays);
    const fb = this.boardFramebuffer(g);
    const fits = (f: Facts): string | null => {
      const other = occupied.find((o) => o.profile !== f.profile);
      if (other) return `the GPU keeps ${other.profile}`;
      if (f.maxInstances !== null && occupied.length >= f.maxInstances) return `${f.maxInstances} x ${f.profile} already there`;
      const used = occupied.reduce((n, o) => n + (o.framebufferMiB ?? 0), 0);
      if (fb !== null && f.framebufferMiB !== null && used + f.framebufferMiB > fb) return 'not enough framebuffer left';
      return null;
    };
    const creates: Action[] = [];
    const freeParents = parents.filter((p) => !busyParents.has(p));
    for (const [profile, count] of remaining) {
      const f = wanted.get(profile)!.facts;
      const want = formatParams(e.vgpuParams[profile] ?? findParams(e, profile));
      let slot = 0;
      for (let left = count; left > 0; left--) {
        const why = fits(f);
        if (why) {
          this.blocked.push({ gpu: g.pci.address, device: g.pci.address, change: `create ${left} x ${profile}`, reason: `waits for in-use vGPUs to be released: ${why}` });
          break;
        }
        let parent = parents[0]!;
        if (onVfs) {
          const next = freeParents.shift();
          if (!next) {
            this.blocked.push({ gpu: g.pci.address, device: g.pci.address, change: `create ${left} more ${profile}`, reason: 'no free mdev parent VF: the others hold vGPUs in use by VMs' });
            break;
          }
          parent = next;
          slot = 0;
        }
        let uuid = stableMdevUuid(this.opts.nodeId, parent, slot);
        while (usedUuids.has(uuid)) uuid = stableMdevUuid(this.opts.nodeId, parent, ++slot);
        usedUuids.add(uuid);
        occupied.push(f);
        creates.push({ kind: 'create-mdev', gpu: g.pci.address, uuid, parent, profile });
        if (want !== null) creates.push({ kind: 'set-mdev-params', gpu: g.pci.address, uuid, params: want });
      }
    }
    if (enable && creates.length) actions.push({ kind: 'enable-vfs', gpu: g.pci.address, count: sriov!.totalVfs });
    actions.push(...removes, ...creates);
  }

  // ---------------------------------------------------------------- in use

  /** Record a blocked change when the device is in use; true if blocked. */
  private blockIfInUse(g: Gpu, device: string, change: Action): boolean {
    const who = this.inUse.get(device);
    if (who === undefined) return false;
    this.blocked.push({ gpu: g.pci.address, device, change: describeChange(change), reason: `in use: ${who}` });
    return true;
  }
}

function findParams(e: ConfigEntry, profile: string): Record<string, string> | undefined {
  for (const [k, v] of Object.entries(e.vgpuParams)) if (stripVendorPrefix(k) === profile) return v;
  return undefined;
}

function describeChange(a: Action): string {
  switch (a.kind) {
    case 'clear-vf-type':
      return `clear VF ${a.vf} (${a.profile ?? `type ${a.typeId}`})`;
    case 'remove-mdev':
      return `remove mdev ${a.uuid} (${a.profile ?? 'unknown type'})`;
    case 'set-vf-params':
      return `set vgpu_params of ${a.vf} to ${a.params}`;
    case 'set-mdev-params':
      return `set vgpu_params of ${a.uuid} to ${a.params}`;
    case 'bind-vfio':
      return `bind ${a.device} to ${a.driver}`;
    case 'unbind-vfio':
      return `return ${a.device} to its host driver`;
    default:
      return a.kind;
  }
}
