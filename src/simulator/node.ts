/**
 * A simulated GPU node: the kernel's PCI/SR-IOV/mdev/VFIO sysfs and the NVIDIA
 * vGPU manager's behaviour, in memory, behind the same SysfsBackend as a real
 * host. See docs/simulator.md for what is modelled and what is not.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../model/errors.js';
import { SysfsError } from '../sysfs/errors.js';
import { parsePciAddress, vfAddress } from '../model/pci.js';
import { parseMdevUuid } from '../sysfs/names.js';
import { SysfsPort } from '../sysfs/port.js';
import type { VfioUser } from '../sysfs/vfio-users.js';
import { simDriver, simModel, simTypes, boardOf, type SimDriver, type SimModel, type SimType } from './hardware.js';
import { SimMig } from './mig.js';
import { checkNvlinkGroups, renderNvidiaSmiTopology } from './nvlink.js';
import { instanceProfileFor, placeInstances } from '../model/mig.js';
import { VirtualBackend, chardev, dir, file, link, mkdirp, put, text, unput, type Trees, type VDir } from './vfs.js';

export type SimMode = 'sriov-vgpu' | 'mdev-vgpu' | 'passthrough' | 'host';

export interface SimGpuSpec {
  /** Model key, e.g. `L40S` (see `vmgpu sim models`). */
  model: string;
  count?: number;
  mode: SimMode;
  /** SR-IOV vGPU: enable VFs at boot (default true for mode sriov-vgpu). */
  vfsEnabled?: boolean;
  /** Profiles to configure at creation: VFs in order (SR-IOV) or mdev instances (mdev). */
  profiles?: string[];
  /** Mixed-size ("heterogeneous") mode at creation. */
  heterogeneous?: boolean;
  numaNode?: number;
  /** Give the GPU an audio function in its IOMMU group (default: per model). */
  audio?: boolean;
}

export interface SimNodeSpec {
  gpus: SimGpuSpec[];
  /** NVIDIA driver version (`/sys/module/nvidia/version`); type IDs and quirks depend on it. */
  driverVersion?: string;
  /** Whether the NVIDIA driver is the vGPU manager (host) driver. Default: true if any GPU is in a vGPU mode. */
  vgpuHostDriver?: boolean;
  iommu?: boolean;
  kernelRelease?: string;
  /** NVIDIA's sriov-manage installed under the host root (default true on a vGPU host). */
  sriovManage?: boolean;
  /** Models whose functions a vendor VFIO variant driver claims (modules.alias), e.g. ['H100']. */
  vfioVariantFor?: string[];
  /** The next N writes to sriov_numvfs fail with EBUSY "Cannot obtain unbindLock". */
  transientUnbindLockFailures?: number;
  /** iommufd enabled (`/dev/iommu`). Default true when the IOMMU is on. */
  iommufd?: boolean;
  /**
   * NVIDIA's nvidia-smi (and NVML) reachable by vmgpu (default true). False
   * models a container without the host driver's tools: type IDs on a full
   * card cannot be named from it, and mixed-size mode can be neither read nor set.
   */
  nvidiaSmi?: boolean;
  /**
   * GPUs joined by NVLink: groups of GPU indices (the node's GPUs in PCI
   * address order), every pair in a group linked (as through an NVSwitch).
   * Only `nvidia-smi topo -m` shows it; absent: no NVLink.
   */
  nvlink?: number[][];
}

export interface WriteRecord {
  path: string;
  data: string;
  error: string | null;
}

interface SimFn {
  addr: string;
  bus: string;
  deviceId: string;
  subsystemDeviceId: string;
  classCode: string;
  revision: string;
  driver: string | null;
  override: string | null;
  group: number | null;
  numa: number;
  kind: 'pf' | 'vf' | 'audio';
  gpu: SimGpu;
  vfio: number | null;
}

interface SimVf {
  fn: SimFn;
  index: number;
  typeId: number;
  params: string;
  /** The GPU instance its MIG-backed vGPU sits on. */
  gi: number | null;
}

interface SimMdev {
  uuid: string;
  gpu: SimGpu;
  /** The PF, or on Ampere the VF that hosts it. */
  parent: SimFn;
  type: SimType;
  group: number;
  params: string;
  /** The GPU instance a MIG-backed vGPU sits on. */
  gi: number | null;
}

interface SimGpu {
  model: SimModel;
  /** Ampere: mdev types live on the VFs. */
  mdevOnVfs: boolean;
  pf: SimFn;
  audio: SimFn | null;
  types: SimType[];
  framebufferMiB: number;
  vfs: SimVf[];
  heterogeneous: boolean;
  present: boolean;
  mdevs: Map<string, SimMdev>;
  /** MIG mode and GPU instances; null on a board without MIG-backed profiles. */
  mig: SimMig | null;
}

/**
 * What `hold` takes: an mdev UUID (anything that starts like one is checked as
 * one) or a PCI address, canonical. Throws InvalidNameError for anything else.
 */
export function parseHeldDevice(id: string): string {
  return /^[0-9a-fA-F]{8}-/.test(id) ? parseMdevUuid(id) : parsePciAddress(id);
}

const BUSES = ['18', '2a', '3b', '5d', '9a', 'ab', 'ba', 'db', '1c', '4e', '6f', '8c', 'c1', 'c9', 'e1', 'f1'];
const VGPU_MODULES = ['nvidia_vgpu_vfio'];

export class SimulatedNode {
  readonly driver: SimDriver;
  readonly kernelRelease: string;
  readonly vgpuHostDriver: boolean;
  readonly iommu: boolean;
  readonly iommufd: boolean;
  readonly backend: VirtualBackend;
  readonly port: SysfsPort;
  readonly gpus: SimGpu[] = [];
  private held = new Set<string>();
  private removedDevNodes = new Set<string>();
  private readonly log: WriteRecord[] = [];
  private nextGroup = 10;
  private nextVfio = 0;
  private unbindLockFailures: number;
  private readonly sriovManage: boolean;
  private readonly nvidiaSmi: boolean;
  private readonly variantModels: Set<string>;
  private tree: Trees | null = null;

  constructor(readonly spec: SimNodeSpec) {
    this.driver = simDriver(spec.driverVersion ?? '595.58.02');
    this.kernelRelease = spec.kernelRelease ?? '6.8.0-49-generic';
    this.vgpuHostDriver = spec.vgpuHostDriver ?? spec.gpus.some((g) => g.mode === 'sriov-vgpu' || g.mode === 'mdev-vgpu');
    this.iommu = spec.iommu ?? true;
    this.iommufd = spec.iommufd ?? this.iommu;
    this.sriovManage = spec.sriovManage ?? this.vgpuHostDriver;
    this.nvidiaSmi = spec.nvidiaSmi ?? true;
    this.unbindLockFailures = spec.transientUnbindLockFailures ?? 0;
    this.variantModels = new Set((spec.vfioVariantFor ?? []).map((k) => simModel(k).key));
    this.backend = new VirtualBackend(
      `the simulator (driver ${this.driver.version})`,
      () => this.trees(),
      (root, rel, data, error) => this.log.push({ path: this.backend.display(root, rel), data, error: error ? error.code : null }),
    );
    this.port = new SysfsPort(this.backend);
    this.createGpus();
    checkNvlinkGroups(spec.nvlink, this.gpus.length);
  }

  // ------------------------------------------------------------ test and CLI controls

  /** Mark a VF, passthrough GPU (PCI address) or mdev (UUID) as held by a running VM. */
  hold(id: string): void {
    this.held.add(parseHeldDevice(id));
  }
  release(id: string): void {
    this.held.delete(parseHeldDevice(id));
  }
  heldDevices(): string[] {
    return [...this.held].sort();
  }
  /**
   * The simulated VMs as a host sees them: one QEMU process per held device,
   * with the device's VFIO group open (and its cdev, when it has one).
   */
  vfioUsers(): VfioUser[] {
    const out: VfioUser[] = [];
    for (const [i, id] of this.heldDevices().entries()) {
      const pid = 40000 + i;
      const command = 'qemu-system-x86_64';
      const fn = this.fnByAddr(id);
      const mdev = fn ? undefined : this.gpus.flatMap((g) => [...g.mdevs.values()]).find((m) => m.uuid === id);
      const group = fn?.group ?? mdev?.group ?? null;
      if (group !== null) out.push({ pid, command, kind: 'group', id: String(group) });
      if (fn?.vfio !== null && fn?.vfio !== undefined) out.push({ pid, command, kind: 'cdev', id: `vfio${fn.vfio}` });
    }
    return out;
  }
  /** Number of write attempts (successful or not) made through the backend or host tools. */
  writes(): number {
    return this.log.length;
  }
  writeLog(): readonly WriteRecord[] {
    return this.log;
  }
  /** The GPU falls off the bus (as after an Xid 79): it and its VFs and mdevs vanish. */
  removeDevice(pf: string): void {
    this.gpuByPf(pf).present = false;
    this.invalidate();
  }
  restoreDevice(pf: string): void {
    this.gpuByPf(pf).present = true;
    this.invalidate();
  }
  /**
   * Remove a device node (or restore it): a number is an IOMMU group's
   * `/dev/vfio/<group>`; a string a path under /dev (`vfio/devices/vfio3`,
   * `vfio/vfio`, `iommu`).
   */
  removeDevNode(node: number | string): void {
    this.removedDevNodes.add(String(node));
    this.invalidate();
  }
  restoreDevNode(node: number | string): void {
    this.removedDevNodes.delete(String(node));
    this.invalidate();
  }
  /** Simulate a reboot: VFs, vGPU types and mdevs vanish; drivers go back to their defaults. */
  reboot(): void {
    for (const g of this.gpus) {
      g.vfs = [];
      g.mdevs.clear();
      g.heterogeneous = false;
      g.present = true;
      g.mig?.reboot();
      for (const fn of [g.pf, g.audio]) {
        if (!fn) continue;
        fn.override = null;
        fn.driver = this.defaultDriver(fn);
        fn.vfio = null;
      }
    }
    this.held.clear();
    this.invalidate();
  }

  // ------------------------------------------------------------ host tools (sriov-manage, nvidia-smi)

  /** `sriov-manage -e <pf>`: enables all VFs and resets mixed-size mode, retrying the unbind lock itself. */
  sriovManageEnable(pf: string): void {
    const g = this.gpuByPf(pf);
    this.log.push({ path: `exec sriov-manage -e ${pf}`, data: '', error: null });
    if (!this.sriovManage) throw new SysfsError('exec', 'sriov-manage', 'ENOENT');
    if (g.vfs.length === 0) this.enableVfs(g, g.model.totalVfs);
    g.heterogeneous = false;
    this.invalidate();
  }

  /** `sriov-manage -d <pf>`: clears the VFs' types and disables them (the driver rebinds: GPU instances go). */
  sriovManageDisable(pf: string): void {
    const g = this.gpuByPf(pf);
    this.log.push({ path: `exec sriov-manage -d ${pf}`, data: '', error: null });
    if (!this.sriovManage) throw new SysfsError('exec', 'sriov-manage', 'ENOENT');
    if (g.vfs.some((v) => this.isHeld(v.fn.addr)) || [...g.mdevs.keys()].some((u) => this.isHeld(u))) throw new SysfsError('exec', `sriov-manage -d ${pf}`, 'EBUSY', 'Cannot obtain unbindLock');
    this.disableVfs(g);
  }

  /** What `nvidia-smi topo -m` and `--query-gpu=index,pci.bus_id` print; undefined without nvidia-smi. */
  nvidiaSmiTopology(): { topo: string; busIds: string } | undefined {
    if (!this.nvidiaSmi) return undefined;
    const gpus = this.gpus.map((g) => ({ address: g.pf.addr, numaNode: g.pf.numa, visible: g.present && g.pf.driver === 'nvidia' }));
    return renderNvidiaSmiTopology(gpus, this.spec.nvlink ?? []);
  }

  /** Mixed-size mode as `nvidia-smi -q` reports it; undefined without nvidia-smi. */
  heterogeneousMode(pf: string): boolean | undefined {
    if (!this.nvidiaSmi) return undefined;
    return this.gpuByPf(pf).heterogeneous;
  }

  /** `nvidia-smi vgpu -shm 1`: only before the first type is written. */
  setHeterogeneousMode(pf: string, enabled: boolean): void {
    const g = this.gpuByPf(pf);
    this.log.push({ path: `exec nvidia-smi vgpu -shm ${enabled ? 1 : 0} -i ${pf}`, data: '', error: null });
    if (!this.nvidiaSmi) throw new SysfsError('exec', 'nvidia-smi', 'ENOENT', 'nvidia-smi is not installed or not reachable');
    if (g.vfs.some((v) => v.typeId !== 0)) {
      throw new SysfsError('exec', `nvidia-smi vgpu -shm ${enabled ? 1 : 0} -i ${pf}`, 'EBUSY', 'vGPUs are configured on this GPU; clear them first');
    }
    g.heterogeneous = enabled;
  }

  /** MIG mode as `nvidia-smi --query-gpu=mig.mode.current,mig.mode.pending` reports it; undefined without nvidia-smi or MIG. */
  migMode(pf: string): { current: boolean; pending: boolean } | undefined {
    const mig = this.gpuByPf(pf).mig;
    return this.nvidiaSmi && mig ? { current: mig.current, pending: mig.pending } : undefined;
  }

  /** `nvidia-smi -i <pf> -mig 0|1` (see mig.ts for when the driver refuses or leaves it pending). */
  setMigMode(pf: string, enabled: boolean): void {
    const cmd = `nvidia-smi -i ${pf} -mig ${enabled ? 1 : 0}`;
    this.log.push({ path: `exec ${cmd}`, data: '', error: null });
    const g = this.gpuByPf(pf);
    if (!this.nvidiaSmi) throw new SysfsError('exec', 'nvidia-smi', 'ENOENT', 'nvidia-smi is not installed or not reachable');
    if (!g.mig) throw new SysfsError('exec', cmd, 'EINVAL', 'Not Supported');
    g.mig.setMode(enabled, g.vfs.length > 0 || g.mdevs.size > 0, cmd);
    this.invalidate();
  }

  /** `nvidia-smi mig -lgi`: the GPU instances; undefined without nvidia-smi or MIG. */
  gpuInstances(pf: string): { id: number; profile: string; profileId: number; start: number; size: number }[] | undefined {
    const mig = this.gpuByPf(pf).mig;
    if (!this.nvidiaSmi || !mig) return undefined;
    return mig.instances.map((i) => ({ id: i.id, profile: i.profile.name, profileId: i.profile.id ?? 0, start: i.start, size: i.profile.size }));
  }

  /** `nvidia-smi mig -i <pf> -cgi <profile>:<start> -C`. */
  createGpuInstance(pf: string, profile: string | number, start: number): void {
    const cmd = `nvidia-smi mig -i ${pf} -cgi ${profile}:${start} -C`;
    this.log.push({ path: `exec ${cmd}`, data: '', error: null });
    const g = this.gpuByPf(pf);
    if (!this.nvidiaSmi) throw new SysfsError('exec', 'nvidia-smi', 'ENOENT', 'nvidia-smi is not installed or not reachable');
    if (!g.mig) throw new SysfsError('exec', cmd, 'EINVAL', 'Not Supported');
    g.mig.create(profile, start, cmd);
    this.invalidate();
  }

  /** `nvidia-smi mig -i <pf> -dci -gi <id>` and `-dgi -gi <id>`: refused while a vGPU sits on the instance. */
  destroyGpuInstance(pf: string, id: number): void {
    const cmd = `nvidia-smi mig -i ${pf} -dgi -gi ${id}`;
    this.log.push({ path: `exec ${cmd}`, data: '', error: null });
    const g = this.gpuByPf(pf);
    if (!this.nvidiaSmi) throw new SysfsError('exec', 'nvidia-smi', 'ENOENT', 'nvidia-smi is not installed or not reachable');
    if (!g.mig) throw new SysfsError('exec', cmd, 'EINVAL', 'Not Supported');
    g.mig.destroy(id, this.occupants(g, id).length > 0, cmd);
    this.invalidate();
  }

  /** For tests: MIG mode and GPU instances of a GPU, as the driver has them. */
  migState(pf: string): { current: boolean; pending: boolean; instances: { id: number; profile: string; start: number }[] } | null {
    const mig = this.gpuByPf(pf).mig;
    return mig ? { current: mig.current, pending: mig.pending, instances: mig.instances.map((i) => ({ id: i.id, profile: i.profile.name, start: i.start })) } : null;
  }

  /** For tests: the GPU instance the vGPU on a VF (address) or mdev (UUID) sits on. */
  gpuInstanceOf(id: string): number | null {
    for (const g of this.gpus) {
      const vf = g.vfs.find((v) => v.fn.addr === id.toLowerCase());
      if (vf) return vf.gi;
      const m = g.mdevs.get(id.toLowerCase());
      if (m) return m.gi;
    }
    return null;
  }

  /** `nvidia-smi vgpu -s -i <pf>`-style listing: supported types with hex IDs; undefined without nvidia-smi. */
  nvidiaSmiSupportedTypes(pf: string): string | undefined {
    if (!this.nvidiaSmi) return undefined;
    const g = this.gpuByPf(pf);
    const lines = [`GPU ${pf.replace(/^([0-9a-f]{4})/, '0000$1').toUpperCase()}`];
    for (const t of g.types) {
      lines.push(`    vGPU Type ID                      : 0x${t.id.toString(16)}`);
      lines.push(`    Name                              : ${t.name}`);
    }
    return lines.join('\n') + '\n';
  }

  // ------------------------------------------------------------ construction

  private createGpus(): void {
    let bus = 0;
    for (const gs of this.spec.gpus) {
      const model = simModel(gs.model);
      const count = gs.count ?? 1;
      for (let i = 0; i < count; i++) {
        const b = BUSES[bus] ?? (0x20 + bus).toString(16).padStart(2, '0');
        const numa = gs.numaNode ?? (bus < Math.max(1, Math.ceil(this.totalGpus() / 2)) ? 0 : 1);
        bus++;
        const gpu = this.newGpu(model, b, gs, numa);
        this.gpus.push(gpu);
      }
    }
    this.gpus.sort((a, b) => a.pf.addr.localeCompare(b.pf.addr));
  }

  private totalGpus(): number {
    return this.spec.gpus.reduce((n, g) => n + (g.count ?? 1), 0);
  }

  private newGpu(model: SimModel, bus: string, gs: SimGpuSpec, numa: number): SimGpu {
    const board = boardOf(model);
    const pt = gs.mode === 'passthrough';
    const driver = pt ? (this.iommu ? this.vfioDriverFor(model) : null) : 'nvidia';
    const group = this.iommu ? this.nextGroup++ : null;
    const gpu = {} as SimGpu;
    const pf: SimFn = {
      addr: `0000:${bus}:00.0`,
      bus,
      deviceId: model.deviceId,
      subsystemDeviceId: model.subsystemDeviceId,
      classCode: model.classCode,
      revision: model.revision,
      driver,
      override: pt ? this.vfioDriverFor(model) : null,
      group,
      numa,
      kind: 'pf',
      gpu,
      vfio: pt && this.iommu ? this.nextVfio++ : null,
    };
    const withAudio = gs.audio ?? model.audioDeviceId !== null;
    const audio: SimFn | null = withAudio
      ? {
          addr: `0000:${bus}:00.1`,
          bus,
          deviceId: model.audioDeviceId ?? '22ba',
          subsystemDeviceId: model.subsystemDeviceId,
          classCode: '040300',
          revision: 'a1',
          driver: pt ? (this.iommu ? 'vfio-pci' : null) : 'snd_hda_intel',
          override: pt ? 'vfio-pci' : null,
          group,
          numa,
          kind: 'audio',
          gpu,
          vfio: pt && this.iommu ? this.nextVfio++ : null,
        }
      : null;
    Object.assign(gpu, {
      model,
      mdevOnVfs: board.mdevOnVfs,
      pf,
      audio,
      types: simTypes(model, this.driver.version),
      framebufferMiB: board.framebufferMiB,
      vfs: [],
      heterogeneous: gs.heterogeneous ?? false,
      present: true,
      mdevs: new Map(),
      mig: board.mig ? new SimMig(board.mig) : null,
    } satisfies Omit<SimGpu, never>);
    if (gs.mode === 'sriov-vgpu') {
      if (model.framework !== 'sriov') throw new InputError(`simulator: ${model.key} uses mdev vGPU, not SR-IOV vGPU; use --mode mdev-vgpu`);
      if (gs.vfsEnabled ?? true) this.enableVfs(gpu, model.totalVfs);
      this.migFor(gpu, gs.profiles ?? []);
      for (const [i, p] of (gs.profiles ?? []).entries()) {
        const vf = gpu.vfs[i];
        const t = this.typeByProfile(gpu, p);
        if (!vf) throw new InputError(`simulator: ${model.key} has ${gpu.vfs.length} VFs enabled; cannot configure profile #${i + 1}`);
        if (!this.creatable(gpu, vf).includes(t)) throw new InputError(`simulator: ${p} does not fit on ${pf.addr} after ${i} profiles`);
        vf.typeId = t.id;
        vf.gi = this.roomFor(gpu, t)?.id ?? null;
      }
    } else if (gs.mode === 'mdev-vgpu') {
      if (model.framework !== 'mdev') throw new InputError(`simulator: ${model.key} uses SR-IOV vGPU, not mdev; use --mode sriov-vgpu`);
      if (gpu.mdevOnVfs && (gs.vfsEnabled ?? true)) this.enableVfs(gpu, model.totalVfs);
      this.migFor(gpu, gs.profiles ?? []);
      for (const [i, p] of (gs.profiles ?? []).entries()) {
        const t = this.typeByProfile(gpu, p);
        const parent = this.mdevParents(gpu).find((x) => this.availableInstances(gpu, t, x) > 0);
        if (!parent) throw new InputError(`simulator: ${p} does not fit on ${pf.addr} after ${i} instances`);
        this.addMdev(gpu, parent, t, deterministicUuid(`${pf.addr}/${i}`));
      }
    } else if (gs.profiles?.length) {
      throw new InputError(`simulator: profiles only apply to modes sriov-vgpu and mdev-vgpu`);
    }
    return gpu;
  }

  /** Profiles given at creation that are MIG-backed: MIG mode on, and the GPU instances they need (as vmgpu would place them). */
  private migFor(gpu: SimGpu, profiles: string[]): void {
    const types = profiles.map((p) => this.typeByProfile(gpu, p)).filter((t) => t.migBacked);
    if (!gpu.mig || types.length === 0) return;
    const g = gpu.mig.geometry;
    const need = types.map((t) => instanceProfileFor(g, t.profile)!).filter((x, i, all) => g.vgpusPerInstance === 'one' || all.indexOf(x) === i);
    const starts = placeInstances(g, [], need);
    if (!starts) throw new Error(`simulator: ${profiles.join(', ')} do not fit the MIG geometry of ${gpu.model.key}`);
    gpu.mig.current = gpu.mig.pending = true;
    need.forEach((x, i) => gpu.mig!.create(x.name, starts[i]!, 'simulator'));
  }

  private vfioDriverFor(model: SimModel): string {
    return this.variantModels.has(model.key) ? 'nvgrace_gpu_vfio_pci' : 'vfio-pci';
  }

  private typeByProfile(gpu: SimGpu, profile: string): SimType {
    const t = gpu.types.find((x) => x.profile === profile || x.name === profile);
    if (!t) throw new InputError(`simulator: ${gpu.model.key} has no profile ${profile} (has ${gpu.types.map((x) => x.profile).join(', ')})`);
    return t;
  }

  private enableVfs(gpu: SimGpu, n: number): void {
    const { pf, model } = gpu;
    gpu.mig?.wipe(); // the driver rebinds: GPU instances are runtime state
    for (let i = 0; i < n; i++) {
      gpu.vfs.push({
        index: i,
        typeId: 0,
        gi: null,
        params: '',
        fn: {
          addr: vfAddress(pf.addr, model.vfOffset, model.vfStride, i),
          bus: pf.bus,
          deviceId: pf.deviceId,
          subsystemDeviceId: pf.subsystemDeviceId,
          classCode: pf.classCode,
          revision: pf.revision,
          driver: 'nvidia',
          override: null,
          group: this.iommu ? this.nextGroup++ : null,
          numa: pf.numa,
          kind: 'vf',
          gpu,
          vfio: this.iommu ? this.nextVfio++ : null,
        },
      });
    }
  }

  private addMdev(gpu: SimGpu, parent: SimFn, type: SimType, uuid: string): void {
    gpu.mdevs.set(uuid, { uuid, gpu, parent, type, group: this.nextGroup++, params: '', gi: this.roomFor(gpu, type)?.id ?? null });
  }

  /** The functions that carry `mdev_supported_types` right now. */
  private mdevParents(gpu: SimGpu): SimFn[] {
    if (gpu.model.framework !== 'mdev' || !this.vgpuHostDriver || gpu.pf.driver !== 'nvidia') return [];
    if (!gpu.mdevOnVfs) return [gpu.pf];
    return gpu.vfs.filter((v) => v.fn.driver === 'nvidia').map((v) => v.fn);
  }

  // ------------------------------------------------------------ the driver's rules

  private typeOf(gpu: SimGpu, id: number): SimType | undefined {
    return gpu.types.find((t) => t.id === id);
  }

  private configured(gpu: SimGpu): SimType[] {
    const out: SimType[] = [];
    for (const v of gpu.vfs) if (v.typeId !== 0) out.push(this.typeOf(gpu, v.typeId)!);
    for (const m of gpu.mdevs.values()) out.push(m.type);
    return out;
  }

  /** The vGPU types sitting on one GPU instance. */
  private occupants(gpu: SimGpu, gi: number): SimType[] {
    const vfs = gpu.vfs.filter((v) => v.typeId !== 0 && v.gi === gi).map((v) => this.typeOf(gpu, v.typeId)!);
    return [...vfs, ...[...gpu.mdevs.values()].filter((m) => m.gi === gi).map((m) => m.type)];
  }

  /** The GPU instance one more MIG-backed vGPU of `t` would go on. */
  private roomFor(gpu: SimGpu, t: SimType) {
    return gpu.mig?.roomFor(t, (gi) => this.occupants(gpu, gi));
  }

  /** Whether one more instance of `t` fits next to what the GPU already has (`used`: its configured types, when known). */
  private fits(gpu: SimGpu, t: SimType, used = this.configured(gpu)): boolean {
    if (used.some((u) => u.migBacked !== t.migBacked)) return false;
    // MIG mode decides which kind the driver offers; a MIG-backed vGPU needs a GPU instance with room.
    if ((gpu.mig?.current ?? false) !== t.migBacked) return false;
    if (t.migBacked) return used.filter((u) => u.id === t.id).length < t.maxInstances && this.roomFor(gpu, t) !== undefined;
    if (!gpu.heterogeneous && used.some((u) => u.id !== t.id)) return false;
    if (gpu.heterogeneous && used.some((u) => u.series !== t.series)) return false;
    const sameType = used.filter((u) => u.id === t.id).length;
    // MIG-backed vGPUs live in GPU instances, whose memory the names round up: their max instances bound them.
    const taken = (x: SimType) => (x.migBacked ? 0 : x.framebufferMiB);
    const usedFb = used.reduce((n, u) => n + taken(u), 0);
    return sameType < t.maxInstances && usedFb + taken(t) <= gpu.framebufferMiB;
  }

  private creatable(gpu: SimGpu, vf: SimVf): SimType[] {
    if (vf.typeId !== 0) return [];
    const used = this.configured(gpu);
    return gpu.types.filter((t) => this.fits(gpu, t, used));
  }

  private availableInstances(gpu: SimGpu, t: SimType, parent: SimFn): number {
    if (gpu.mdevOnVfs) {
      // One vGPU per VF.
      if ([...gpu.mdevs.values()].some((m) => m.parent === parent)) return 0;
      return this.fits(gpu, t) ? 1 : 0;
    }
    let n = 0;
    // Count how many more would fit, one at a time (the rules are not linear in mixed mode).
    const extra: SimMdev[] = [];
    while (this.fits(gpu, t) && n < 64) {
      const uuid = `probe-${n}`;
      const m = { uuid, gpu, parent, type: t, group: -1, params: '', gi: null };
      gpu.mdevs.set(uuid, m);
      extra.push(m);
      n++;
    }
    for (const m of extra) gpu.mdevs.delete(m.uuid);
    return n;
  }

  /** A VM holds the device, or another function of its IOMMU group (the group is the unit a VM opens). */
  private isHeld(id: string): boolean {
    if (this.held.has(id.toLowerCase())) return true;
    const fn = this.fnByAddr(id.toLowerCase());
    if (!fn || fn.group === null) return false;
    return [...this.held].some((h) => h !== fn.addr && this.fnByAddr(h)?.group === fn.group);
  }

  private writeVgpuType(gpu: SimGpu, vf: SimVf, data: string): void {
    if (data.endsWith('\n') && this.driver.rejectsTrailingNewline) {
      throw new SysfsError('write', '', 'EINVAL', `driver ${this.driver.version} rejects a trailing newline`);
    }
    const value = data.trim();
    if (!/^[0-9]{1,9}$/.test(value)) throw new SysfsError('write', '', 'EINVAL', `${JSON.stringify(value)} is not a vGPU type ID`);
    const id = Number(value);
    if (this.isHeld(vf.fn.addr)) throw new SysfsError('write', '', 'EBUSY', 'the VF is in use by a VM');
    if (id === vf.typeId) return;
    if (id === 0) {
      vf.typeId = 0;
      vf.gi = null;
      return;
    }
    if (vf.typeId !== 0) throw new SysfsError('write', '', 'EBUSY', `the VF already has vGPU type ${vf.typeId}; write 0 first`);
    const t = this.typeOf(gpu, id);
    if (!t || !this.creatable(gpu, vf).includes(t)) throw new SysfsError('write', '', 'EINVAL', `vGPU type ${id} is not creatable on this VF`);
    vf.gi = this.roomFor(gpu, t)?.id ?? null;
    vf.typeId = id;
  }

  private writeNumVfs(gpu: SimGpu, data: string): void {
    const value = data.trim();
    if (!/^[0-9]{1,4}$/.test(value)) throw new SysfsError('write', '', 'EINVAL');
    const n = Number(value);
    if (n > gpu.model.totalVfs) throw new SysfsError('write', '', 'ERANGE', `at most ${gpu.model.totalVfs} VFs`);
    if (n === gpu.vfs.length) return;
    if (this.unbindLockFailures > 0) {
      this.unbindLockFailures--;
      throw new SysfsError('write', '', 'EBUSY', 'Cannot obtain unbindLock');
    }
    if (n !== 0 && gpu.vfs.length !== 0) throw new SysfsError('write', '', 'EBUSY', `${gpu.vfs.length} VFs already enabled; disable before enabling ${n}`);
    if (n === 0) {
      if (gpu.vfs.some((v) => this.isHeld(v.fn.addr))) throw new SysfsError('write', '', 'EBUSY', 'Cannot obtain unbindLock');
      this.disableVfs(gpu);
      return;
    }
    if (gpu.model.framework === 'mdev' && !gpu.mdevOnVfs) throw new SysfsError('write', '', 'ENOENT');
    if (gpu.pf.driver !== 'nvidia' || !this.vgpuHostDriver) {
      throw new SysfsError('write', '', 'EINVAL', gpu.pf.driver === 'nvidia' ? 'the NVIDIA driver is not the vGPU manager' : `no SR-IOV support from driver ${gpu.pf.driver ?? '(none)'}`);
    }
    this.enableVfs(gpu, n);
    this.invalidate();
  }

  /** VFs off (their vGPUs with them); the driver rebinds, so GPU instances go too. */
  private disableVfs(gpu: SimGpu): void {
    gpu.vfs = [];
    if (gpu.mdevOnVfs) gpu.mdevs.clear();
    gpu.mig?.wipe();
    this.invalidate();
  }

  private defaultDriver(fn: SimFn): string {
    return fn.kind === 'audio' ? 'snd_hda_intel' : 'nvidia';
  }

  private bind(fn: SimFn, driver: string): void {
    if (fn.driver !== null) throw new SysfsError('write', '', 'EBUSY', `already bound to ${fn.driver}`);
    if (fn.override !== null && fn.override !== driver) throw new SysfsError('write', '', 'ENODEV', `driver_override is ${fn.override}`);
    const isVfio = /vfio/.test(driver);
    if (isVfio) {
      if (fn.kind === 'vf') throw new SysfsError('write', '', 'EINVAL', 'vfio-pci probe failed: the VF belongs to the NVIDIA vGPU manager');
      if (!this.iommu) throw new SysfsError('write', '', 'EINVAL', 'vfio-pci probe failed: no IOMMU group');
      if (fn.override !== driver) throw new SysfsError('write', '', 'ENODEV', `${driver} has no ID match for ${fn.addr}; set driver_override`);
      if (driver === 'nvgrace_gpu_vfio_pci' && !this.variantModels.has(fn.gpu.model.key)) throw new SysfsError('write', '', 'ENODEV');
      fn.vfio = this.nextVfio++;
    } else if (driver !== this.defaultDriver(fn)) {
      throw new SysfsError('write', '', 'ENODEV', `${driver} does not support ${fn.addr}`);
    } else {
      fn.vfio = fn.kind === 'vf' && this.iommu ? this.nextVfio++ : null;
    }
    fn.driver = driver;
    this.invalidate();
  }

  private unbind(fn: SimFn, data: string): void {
    if (data.trim() !== fn.addr) throw new SysfsError('write', '', 'ENODEV', `${data.trim()} is not bound to this driver`);
    if (this.isHeld(fn.addr)) throw new SysfsError('write', '', 'EBUSY', 'the device is in use by a VM');
    if (fn.kind === 'pf' && (fn.gpu.vfs.some((v) => this.isHeld(v.fn.addr)) || [...fn.gpu.mdevs.keys()].some((u) => this.isHeld(u)))) {
      throw new SysfsError('write', '', 'EBUSY', 'vGPUs of this GPU are in use by VMs');
    }
    if (fn.kind === 'pf') {
      fn.gpu.vfs = [];
      fn.gpu.mdevs.clear();
    }
    fn.driver = null;
    fn.vfio = null;
    this.invalidate();
  }

  private functions(): SimFn[] {
    const out: SimFn[] = [];
    for (const g of this.gpus) {
      if (!g.present) continue;
      out.push(g.pf);
      if (g.audio) out.push(g.audio);
      for (const v of g.vfs) out.push(v.fn);
    }
    return out;
  }

  private fnByAddr(addr: string): SimFn | undefined {
    return this.functions().find((f) => f.addr === addr);
  }

  private gpuByPf(pf: string): SimGpu {
    const g = this.gpus.find((x) => x.pf.addr === pf.toLowerCase());
    if (!g) throw new InputError(`simulator: no GPU at ${pf}`);
    return g;
  }

  private invalidate(): void {
    this.tree = null;
  }

  /** The current file trees (rebuilt lazily after a structural change). */
  trees(): Trees {
    return (this.tree ??= this.build());
  }

  // ------------------------------------------------------------ the file trees

  private build(): Trees {
    const sys = dir();
    const dev = dir();
    const host = dir();
    const drivers = new Set(['nvidia', 'vfio-pci']);
    if (this.gpus.some((g) => g.audio)) drivers.add('snd_hda_intel');
    if (this.variantModels.size) drivers.add('nvgrace_gpu_vfio_pci');
    for (const d of drivers) {
      const base = `bus/pci/drivers/${d}`;
      mkdirp(sys, base);
      put(sys, `${base}/bind`, file(() => '', (data) => this.driverBindWrite(d, data)));
      put(sys, `${base}/unbind`, file(() => '', (data) => this.driverUnbindWrite(d, data)));
      put(sys, `${base}/new_id`, file(() => '', () => {}));
      put(sys, `${base}/remove_id`, file(() => '', () => {}));
      put(sys, `${base}/module`, link(`../../../../module/${d.replace(/-/g, '_')}`));
    }
    put(sys, 'bus/pci/drivers_probe', file(() => '', (data) => this.probeWrite(data)));
    mkdirp(sys, 'bus/pci/devices');

    // Modules.
    const modules = ['nvidia', 'nvidia_uvm', 'vfio', 'vfio_pci', 'vfio_pci_core', 'vfio_iommu_type1', 'kvm', 'kvm_intel'];
    if (this.vgpuHostDriver) modules.push(...VGPU_MODULES);
    if (this.gpus.some((g) => g.model.framework === 'mdev')) modules.push('mdev');
    if (this.iommufd) modules.push('iommufd');
    if (this.gpus.some((g) => g.audio)) modules.push('snd_hda_intel');
    if (this.variantModels.size) modules.push('nvgrace_gpu_vfio_pci');
    for (const m of modules) mkdirp(sys, `module/${m}`);
    put(sys, 'module/nvidia/version', text(`${this.driver.version}\n`));

    if (this.iommu) {
      mkdirp(sys, 'devices/virtual/iommu/dmar0');
      put(sys, 'class/iommu/dmar0', link('../../devices/virtual/iommu/dmar0'));
      if (!this.removedDevNodes.has('vfio/vfio')) put(dev, 'vfio/vfio', chardev());
      if (this.iommufd && !this.removedDevNodes.has('iommu')) put(dev, 'iommu', chardev());
    } else {
      mkdirp(sys, 'class/iommu');
    }
    mkdirp(sys, 'kernel/iommu_groups');

    const anyMdev = this.gpus.some((g) => g.present && this.mdevParents(g).length > 0);
    if (anyMdev) mkdirp(sys, 'class/mdev_bus');
    if (anyMdev) mkdirp(sys, 'bus/mdev/devices');

    for (const fn of this.functions()) this.buildFunction(sys, dev, fn);
    for (const g of this.gpus) {
      if (!g.present) continue;
      this.buildSriov(sys, g);
      for (const parent of this.mdevParents(g)) this.buildMdev(sys, dev, g, parent);
    }

    if (this.sriovManage) put(host, 'usr/lib/nvidia/sriov-manage', text('#!/bin/sh\n# simulated\n'));
    put(host, `lib/modules/${this.kernelRelease}/modules.alias`, text(this.modulesAlias()));
    return { sys, dev, host };
  }

  private devPath(fn: SimFn): string {
    return `devices/pci0000:${fn.bus}/${fn.addr}`;
  }

  private buildFunction(sys: VDir, dev: VDir, fn: SimFn): void {
    const p = this.devPath(fn);
    const hex = (s: string) => `0x${s}\n`;
    put(sys, `bus/pci/devices/${fn.addr}`, link(`../../../${p}`));
    put(sys, `${p}/vendor`, text(hex('10de')));
    put(sys, `${p}/device`, text(hex(fn.deviceId)));
    put(sys, `${p}/subsystem_vendor`, text(hex('10de')));
    put(sys, `${p}/subsystem_device`, text(hex(fn.subsystemDeviceId)));
    put(sys, `${p}/class`, text(hex(fn.classCode)));
    put(sys, `${p}/revision`, text(hex(fn.revision)));
    put(sys, `${p}/numa_node`, text(`${fn.numa}\n`));
    put(sys, `${p}/local_cpulist`, text(fn.numa === 1 ? '32-63\n' : '0-31\n'));
    put(sys, `${p}/enable`, text('1\n'));
    put(sys, `${p}/reset_method`, text(fn.kind === 'vf' ? 'flr\n' : 'bus\n'));
    const cls = fn.classCode;
    put(sys, `${p}/modalias`, text(`pci:v000010DEd0000${fn.deviceId.toUpperCase()}sv000010DEsd0000${fn.subsystemDeviceId.toUpperCase()}bc${cls.slice(0, 2)}sc${cls.slice(2, 4)}i${cls.slice(4, 6)}\n`));
    put(
      sys,
      `${p}/driver_override`,
      file(
        () => `${fn.override ?? '(null)'}\n`,
        (data) => {
          const v = data.replace(/\n$/, '');
          if (v.includes('\n') || v.length > 64) throw new SysfsError('write', '', 'EINVAL');
          fn.override = v === '' ? null : v;
        },
      ),
    );
    if (fn.driver) {
      put(sys, `${p}/driver`, link(`../../../bus/pci/drivers/${fn.driver}`));
      put(sys, `bus/pci/drivers/${fn.driver}/${fn.addr}`, link(`../../../../${p}`));
    }
    if (fn.group !== null) {
      put(sys, `${p}/iommu_group`, link(`../../../kernel/iommu_groups/${fn.group}`));
      put(sys, `kernel/iommu_groups/${fn.group}/devices/${fn.addr}`, link(`../../../../${p}`));
      const vfioBound = fn.driver !== null && (/vfio/.test(fn.driver) || (fn.kind === 'vf' && fn.driver === 'nvidia'));
      if (vfioBound && !this.removedDevNodes.has(String(fn.group))) put(dev, `vfio/${fn.group}`, chardev());
    }
    if (fn.vfio !== null && fn.driver !== null) {
      put(sys, `${p}/vfio-dev/vfio${fn.vfio}/dev`, text(`511:${fn.vfio}\n`));
      if (!this.removedDevNodes.has(`vfio/devices/vfio${fn.vfio}`)) put(dev, `vfio/devices/vfio${fn.vfio}`, chardev());
    }
    if (fn.kind === 'vf') {
      const vf = fn.gpu.vfs.find((v) => v.fn === fn)!;
      put(sys, `${p}/physfn`, link(`../${fn.gpu.pf.addr}`));
      if (fn.driver === 'nvidia' && this.vgpuHostDriver && fn.gpu.model.framework === 'sriov') this.buildVfNvidia(sys, `${p}/nvidia`, fn.gpu, vf);
    }
  }

  private buildVfNvidia(sys: VDir, p: string, gpu: SimGpu, vf: SimVf): void {
    put(
      sys,
      `${p}/creatable_vgpu_types`,
      file(() => ['ID    : vGPU Name', ...this.creatable(gpu, vf).map((t) => `${t.id} : ${t.name}`)].join('\n') + '\n'),
    );
    put(sys, `${p}/current_vgpu_type`, file(() => `${vf.typeId}\n`, (data) => this.writeVgpuType(gpu, vf, data)));
    put(
      sys,
      `${p}/vgpu_params`,
      file(
        () => `${vf.params}\n`,
        (data) => {
          if (this.isHeld(vf.fn.addr)) throw new SysfsError('write', '', 'EBUSY', 'the VF is in use by a VM');
          vf.params = data.trim();
        },
      ),
    );
    put(sys, `${p}/gpu_instance_id`, file(() => giText(vf.gi)));
    put(sys, `${p}/placement_id`, file(() => `${vf.typeId === 0 ? -1 : vf.index}\n`));
  }

  private buildSriov(sys: VDir, g: SimGpu): void {
    if (g.model.totalVfs === 0) return;
    const p = this.devPath(g.pf);
    put(sys, `${p}/sriov_totalvfs`, text(`${g.model.totalVfs}\n`));
    put(sys, `${p}/sriov_numvfs`, file(() => `${g.vfs.length}\n`, (data) => this.writeNumVfs(g, data)));
    put(sys, `${p}/sriov_offset`, text(`${g.model.vfOffset}\n`));
    put(sys, `${p}/sriov_stride`, text(`${g.model.vfStride}\n`));
    for (const v of g.vfs) put(sys, `${p}/virtfn${v.index}`, link(`../${v.fn.addr}`));
  }

  private buildMdev(sys: VDir, dev: VDir, g: SimGpu, parent: SimFn): void {
    const p = this.devPath(parent);
    put(sys, `class/mdev_bus/${parent.addr}`, link(`../../${p}`));
    for (const t of g.types) {
      const tp = `${p}/mdev_supported_types/nvidia-${t.id}`;
      put(sys, `${tp}/name`, text(`${t.name}\n`));
      put(
        sys,
        `${tp}/description`,
        text(`num_heads=${t.series === 'C' ? 0 : 4}, frl_config=${t.series === 'C' ? 0 : 60}, framebuffer=${t.framebufferMiB}M, max_resolution=${t.series === 'C' ? '0x0' : '5120x2880'}, max_instance=${t.maxInstances}\n`),
      );
      put(sys, `${tp}/available_instances`, file(() => `${this.availableInstances(g, t, parent)}\n`));
      put(sys, `${tp}/device_api`, text('vfio-pci\n'));
      put(sys, `${tp}/create`, file(() => '', (data) => this.mdevCreate(g, parent, t, data)));
      mkdirp(sys, `${tp}/devices`);
    }
    for (const m of g.mdevs.values()) if (m.parent === parent) this.buildMdevInstance(sys, dev, m);
  }

  /** One mdev's nodes; also used to add a created mdev to the current tree without rebuilding it. */
  private buildMdevInstance(sys: VDir, dev: VDir, m: SimMdev): void {
    const g = m.gpu;
    const p = this.devPath(m.parent);
    const mp = `${p}/${m.uuid}`;
    put(sys, `${mp}/mdev_type`, link(`../mdev_supported_types/nvidia-${m.type.id}`));
    put(sys, `${mp}/remove`, file(() => '', (data) => this.mdevRemove(g, m, data)));
    put(sys, `${mp}/iommu_group`, link(`../../../../kernel/iommu_groups/${m.group}`));
    put(
      sys,
      `${mp}/nvidia/vgpu_params`,
      file(
        () => `${m.params}\n`,
        (data) => {
          if (this.isHeld(m.uuid)) throw new SysfsError('write', '', 'EBUSY', 'the vGPU is in use by a VM');
          m.params = data.trim();
        },
      ),
    );
    put(sys, `${mp}/nvidia/gpu_instance_id`, file(() => giText(m.gi)));
    put(sys, `${p}/mdev_supported_types/nvidia-${m.type.id}/devices/${m.uuid}`, link(`../../../${m.uuid}`));
    put(sys, `bus/mdev/devices/${m.uuid}`, link(`../../../${mp}`));
    put(sys, `kernel/iommu_groups/${m.group}/devices/${m.uuid}`, link(`../../../../${mp}`));
    if (!this.removedDevNodes.has(String(m.group))) put(dev, `vfio/${m.group}`, chardev());
  }

  private modulesAlias(): string {
    const lines = ['# Aliases extracted from modules themselves.', 'alias pci:v000010DEd*sv*sd*bc03sc02i00* nvidia', 'alias pci:v000010DEd*sv*sd*bc03sc00i00* nvidia'];
    for (const key of this.variantModels) {
      const m = simModel(key);
      lines.push(`alias vfio_pci:v000010DEd0000${m.deviceId.toUpperCase()}sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci`);
    }
    lines.push('alias pci:v*d*sv*sd*bc04sc03i* snd_hda_intel');
    return lines.join('\n') + '\n';
  }

  // ------------------------------------------------------------ write handlers

  private driverBindWrite(driver: string, data: string): void {
    const fn = this.fnByAddr(data.trim());
    if (!fn) throw new SysfsError('write', '', 'ENODEV', `no device ${data.trim()}`);
    this.bind(fn, driver);
  }

  private driverUnbindWrite(driver: string, data: string): void {
    const fn = this.fnByAddr(data.trim());
    if (!fn || fn.driver !== driver) throw new SysfsError('write', '', 'ENODEV', `${data.trim()} is not bound to ${driver}`);
    this.unbind(fn, data);
  }

  private probeWrite(data: string): void {
    const fn = this.fnByAddr(data.trim());
    if (!fn) throw new SysfsError('write', '', 'ENODEV');
    if (fn.driver !== null) return;
    this.bind(fn, fn.override ?? this.defaultDriver(fn));
  }

  private mdevCreate(g: SimGpu, parent: SimFn, t: SimType, data: string): void {
    const uuid = data.trim().toLowerCase();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) throw new SysfsError('write', '', 'EINVAL', 'not a UUID');
    if (this.gpus.some((x) => x.mdevs.has(uuid))) throw new SysfsError('write', '', 'EEXIST', `mdev ${uuid} exists`);
    if (this.availableInstances(g, t, parent) < 1) throw new SysfsError('write', '', 'EDQUOT', `no available instances of ${t.name}`);
    this.addMdev(g, parent, t, uuid);
    // Patch the current tree instead of rebuilding it: a rebuild per create made filling 8 x A100 take seconds.
    if (this.tree) this.buildMdevInstance(this.tree.sys, this.tree.dev, g.mdevs.get(uuid)!);
    this.backend.forget();
  }

  private mdevRemove(g: SimGpu, m: SimMdev, data: string): void {
    if (data.trim() !== '1') throw new SysfsError('write', '', 'EINVAL');
    if (this.isHeld(m.uuid)) throw new SysfsError('write', '', 'EBUSY', 'the vGPU is in use by a VM');
    g.mdevs.delete(m.uuid);
    if (this.tree) {
      // Patch the current tree: the nodes buildMdevInstance made.
      const { sys, dev } = this.tree;
      const p = this.devPath(m.parent);
      unput(sys, `${p}/${m.uuid}`);
      unput(sys, `${p}/mdev_supported_types/nvidia-${m.type.id}/devices/${m.uuid}`);
      unput(sys, `bus/mdev/devices/${m.uuid}`);
      unput(sys, `kernel/iommu_groups/${m.group}`);
      unput(dev, `vfio/${m.group}`);
    }
    this.backend.forget();
  }
}

/** Lay a snapshot's MIG state over a GPU's (its instances recreated where they were). */
function restoreMig(mig: SimMig | null, state: SimState['gpus'][number]['mig']): void {
  if (!mig || !state) return;
  mig.instances = state.instances.map((i) => ({ id: i.id, start: i.start, profile: mig.geometry.profiles.find((x) => x.name === i.profile)! }));
  if (mig.instances.some((i) => !i.profile)) throw new Error('simulator state: a GPU instance of an unknown profile');
  mig.current = state.current;
  mig.pending = state.pending;
}

/**
 * `nvidia/gpu_instance_id`: the instance a MIG-backed vGPU sits on, else -1.
 * (A real driver was reported to answer ENXIO until there is one; vmgpu reads
 * both as "none", and a file that fails to read could not be materialised.)
 */
function giText(gi: number | null): string {
  return `${gi ?? -1}\n`;
}

/** A UUID derived from a string (for the simulator's pre-created instances). */
function deterministicUuid(seed: string): string {
  const h = createHash('sha256').update(`vmgpu-sim/${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// ------------------------------------------------------------ persistence (for `vmgpu --simulate DIR`)

interface FnState {
  addr: string;
  driver: string | null;
  override: string | null;
  group: number | null;
  vfio: number | null;
}

export interface SimState {
  version: 1;
  spec: SimNodeSpec;
  gpus: {
    pf: FnState;
    audio: FnState | null;
    vfs: { fn: FnState; index: number; typeId: number; params: string; gi?: number | null }[];
    heterogeneous: boolean;
    present: boolean;
    mdevs: { uuid: string; parent: string; typeId: number; group: number; params: string; gi?: number | null }[];
    mig?: { current: boolean; pending: boolean; instances: { id: number; profile: string; start: number }[] } | null;
  }[];
  held: string[];
  removedDevNodes: string[];
  nextGroup: number;
  nextVfio: number;
}

const fnState = (f: SimFn): FnState => ({ addr: f.addr, driver: f.driver, override: f.override, group: f.group, vfio: f.vfio });

export function snapshotNode(node: SimulatedNode): SimState {
  const n = node as unknown as { held: Set<string>; removedDevNodes: Set<string>; nextGroup: number; nextVfio: number };
  return {
    version: 1,
    spec: node.spec,
    gpus: node.gpus.map((g) => ({
      pf: fnState(g.pf),
      audio: g.audio ? fnState(g.audio) : null,
      vfs: g.vfs.map((v) => ({ fn: fnState(v.fn), index: v.index, typeId: v.typeId, params: v.params, gi: v.gi })),
      heterogeneous: g.heterogeneous,
      present: g.present,
      mdevs: [...g.mdevs.values()].map((m) => ({ uuid: m.uuid, parent: m.parent.addr, typeId: m.type.id, group: m.group, params: m.params, gi: m.gi })),
      mig: node.migState(g.pf.addr),
    })),
    held: [...n.held],
    removedDevNodes: [...n.removedDevNodes],
    nextGroup: n.nextGroup,
    nextVfio: n.nextVfio,
  };
}

/** Rebuild a node from a snapshot (the spec recreates the hardware; the state is laid over it). */
export function restoreNode(state: SimState): SimulatedNode {
  if (state?.version !== 1) throw new Error('simulator state: unsupported or missing version');
  const node = new SimulatedNode({ ...state.spec, gpus: state.spec.gpus.map((g) => ({ ...g, profiles: [], vfsEnabled: false })) });
  const n = node as unknown as { held: Set<string>; removedDevNodes: Set<string>; nextGroup: number; nextVfio: number; tree: unknown; spec: SimNodeSpec };
  // Keep the node's original description (the construction above strips profiles and VFs).
  n.spec = state.spec;
  const apply = (f: SimFn, s: FnState) => Object.assign(f, { driver: s.driver, override: s.override, group: s.group, vfio: s.vfio });
  for (const [i, gs] of state.gpus.entries()) {
    const g = node.gpus[i];
    if (!g || g.pf.addr !== gs.pf.addr) throw new Error(`simulator state: GPU #${i} does not match the spec`);
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
    restoreMig(g.mig, gs.mig);
  }
  // Names from a file: checked like any other (a state file can be handed to us).
  n.held = new Set(state.held.map(parseHeldDevice));
  n.removedDevNodes = new Set(state.removedDevNodes);
  n.nextGroup = state.nextGroup;
  n.nextVfio = state.nextVfio;
  n.tree = null;
  return node;
}
