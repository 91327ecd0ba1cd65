/**
 * The simulated kernel and NVIDIA driver: the node's settings, its GPUs, the
 * node-wide state (devices VMs hold, removed device nodes, the next IOMMU
 * group and VFIO device numbers), and every change the driver makes to them:
 * binding, VFs on and off, vGPU types, mdevs. Each change makes the checks a
 * real node makes, and fails as it would (no kinder). tree.ts wires the files
 * under /sys to these; node.ts drives them for tests, the CLI and the host tools.
 */
import { SysfsError } from '../sysfs/errors.js';
import { parsePciAddress, vfAddress } from '../model/pci.js';
import { InputError } from '../model/errors.js';
import { parseMdevUuid } from '../sysfs/names.js';
import { simDriver, simModel, type SimDriver, type SimModel, type SimType } from './hardware.js';
import { availableInstances, creatable, roomFor, typeOf } from './rules.js';
import type { SimFn, SimGpu, SimMdev, SimNodeSpec, SimVf } from './state.js';

/**
 * What `hold` takes: an mdev UUID (anything that starts like one is checked as
 * one) or a PCI address, canonical. Throws InvalidNameError for anything else.
 */
export function parseHeldDevice(id: string): string {
  return /^[0-9a-fA-F]{8}-/.test(id) ? parseMdevUuid(id) : parsePciAddress(id);
}

export class SimKernel {
  readonly driver: SimDriver;
  readonly kernelRelease: string;
  readonly vgpuHostDriver: boolean;
  readonly iommu: boolean;
  readonly iommufd: boolean;
  readonly sriovManage: boolean;
  readonly nvidiaSmi: boolean;
  /** Models whose functions a vendor VFIO variant driver (nvgrace_gpu_vfio_pci) claims. */
  readonly variantModels: Set<string>;
  /** In PCI address order, once created (create.ts). */
  readonly gpus: SimGpu[] = [];
  /** PCI addresses and mdev UUIDs a VM holds. */
  held = new Set<string>();
  /** Device nodes removed by hand (`removeDevNode`): IOMMU group numbers and paths under /dev. */
  removedDevNodes = new Set<string>();
  nextGroup = 10;
  nextVfio = 0;
  private unbindLockFailures: number;

  /** `invalidate`: the devices changed shape; the tree must be rendered again. */
  constructor(
    spec: SimNodeSpec,
    readonly invalidate: () => void,
  ) {
    this.driver = simDriver(spec.driverVersion ?? '595.58.02');
    this.kernelRelease = spec.kernelRelease ?? '6.8.0-49-generic';
    this.vgpuHostDriver = spec.vgpuHostDriver ?? spec.gpus.some((g) => g.mode === 'sriov-vgpu' || g.mode === 'mdev-vgpu');
    this.iommu = spec.iommu ?? true;
    this.iommufd = spec.iommufd ?? this.iommu;
    this.sriovManage = spec.sriovManage ?? this.vgpuHostDriver;
    this.nvidiaSmi = spec.nvidiaSmi ?? true;
    this.unbindLockFailures = spec.transientUnbindLockFailures ?? 0;
    this.variantModels = new Set((spec.vfioVariantFor ?? []).map((k) => simModel(k).key));
  }

  // ------------------------------------------------------------ lookups

  /** The PCI functions on the bus: present GPUs' PFs, audio functions and VFs. */
  functions(): SimFn[] {
    const out: SimFn[] = [];
    for (const g of this.gpus) {
      if (!g.present) continue;
      out.push(g.pf);
      if (g.audio) out.push(g.audio);
      for (const v of g.vfs) out.push(v.fn);
    }
    return out;
  }

  fnByAddr(addr: string): SimFn | undefined {
    return this.functions().find((f) => f.addr === addr);
  }

  gpuByPf(pf: string): SimGpu {
    const g = this.gpus.find((x) => x.pf.addr === pf.toLowerCase());
    if (!g) throw new InputError(`simulator: no GPU at ${pf}`);
    return g;
  }

  /** A VM holds the device, or another function of its IOMMU group (the group is the unit a VM opens). */
  isHeld(id: string): boolean {
    if (this.held.has(id.toLowerCase())) return true;
    const fn = this.fnByAddr(id.toLowerCase());
    if (!fn || fn.group === null) return false;
    return [...this.held].some((h) => h !== fn.addr && this.fnByAddr(h)?.group === fn.group);
  }

  /** A VM holds one of the GPU's VFs or mdevs. */
  vgpusHeld(g: SimGpu): boolean {
    return g.vfs.some((v) => this.isHeld(v.fn.addr)) || [...g.mdevs.keys()].some((u) => this.isHeld(u));
  }

  defaultDriver(fn: SimFn): string {
    return fn.kind === 'audio' ? 'snd_hda_intel' : 'nvidia';
  }

  vfioDriverFor(model: SimModel): string {
    return this.variantModels.has(model.key) ? 'nvgrace_gpu_vfio_pci' : 'vfio-pci';
  }

  // ------------------------------------------------------------ driver binding

  /** `bus/pci/drivers/<driver>/bind`. */
  driverBindWrite(driver: string, data: string): void {
    const fn = this.fnByAddr(data.trim());
    if (!fn) throw new SysfsError('write', '', 'ENODEV', `no device ${data.trim()}`);
    this.bind(fn, driver);
  }

  /** `bus/pci/drivers/<driver>/unbind`. */
  driverUnbindWrite(driver: string, data: string): void {
    const fn = this.fnByAddr(data.trim());
    if (!fn || fn.driver !== driver) throw new SysfsError('write', '', 'ENODEV', `${data.trim()} is not bound to ${driver}`);
    this.unbind(fn, data);
  }

  /** `bus/pci/drivers_probe`: an unbound function goes to its override, else its default driver. */
  probeWrite(data: string): void {
    const fn = this.fnByAddr(data.trim());
    if (!fn) throw new SysfsError('write', '', 'ENODEV');
    if (fn.driver !== null) return;
    this.bind(fn, fn.override ?? this.defaultDriver(fn));
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
    if (fn.kind === 'pf' && this.vgpusHeld(fn.gpu)) throw new SysfsError('write', '', 'EBUSY', 'vGPUs of this GPU are in use by VMs');
    if (fn.kind === 'pf') {
      fn.gpu.vfs = [];
      fn.gpu.mdevs.clear();
    }
    fn.driver = null;
    fn.vfio = null;
    this.invalidate();
  }

  // ------------------------------------------------------------ SR-IOV

  /** `sriov_numvfs`. */
  writeNumVfs(gpu: SimGpu, data: string): void {
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

  /** `n` VFs on, bound to nvidia, without a vGPU type. */
  enableVfs(gpu: SimGpu, n: number): void {
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

  /** VFs off (their vGPUs with them); the driver rebinds, so GPU instances go too. */
  disableVfs(gpu: SimGpu): void {
    gpu.vfs = [];
    if (gpu.mdevOnVfs) gpu.mdevs.clear();
    gpu.mig?.wipe();
    this.invalidate();
  }

  // ------------------------------------------------------------ vGPUs

  /** `<VF>/nvidia/current_vgpu_type`: 0 clears it; another type only on a VF without one, if creatable. */
  writeVgpuType(gpu: SimGpu, vf: SimVf, data: string): void {
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
    const t = typeOf(gpu, id);
    if (!t || !creatable(gpu, vf).includes(t)) throw new SysfsError('write', '', 'EINVAL', `vGPU type ${id} is not creatable on this VF`);
    vf.gi = roomFor(gpu, t)?.id ?? null;
    vf.typeId = id;
  }

  /** An mdev of type `type` under `parent`, in a new IOMMU group (on the GPU instance with room, if MIG-backed). */
  addMdev(gpu: SimGpu, parent: SimFn, type: SimType, uuid: string): SimMdev {
    const m = { uuid, gpu, parent, type, group: this.nextGroup++, params: '', gi: roomFor(gpu, type)?.id ?? null };
    gpu.mdevs.set(uuid, m);
    return m;
  }

  /** `mdev_supported_types/<type>/create`. */
  mdevCreate(g: SimGpu, parent: SimFn, t: SimType, data: string): SimMdev {
    const uuid = data.trim().toLowerCase();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) throw new SysfsError('write', '', 'EINVAL', 'not a UUID');
    if (this.gpus.some((x) => x.mdevs.has(uuid))) throw new SysfsError('write', '', 'EEXIST', `mdev ${uuid} exists`);
    if (availableInstances(g, t, parent) < 1) throw new SysfsError('write', '', 'EDQUOT', `no available instances of ${t.name}`);
    return this.addMdev(g, parent, t, uuid);
  }

  /** `<mdev>/remove`. */
  mdevRemove(g: SimGpu, m: SimMdev, data: string): void {
    if (data.trim() !== '1') throw new SysfsError('write', '', 'EINVAL');
    if (this.isHeld(m.uuid)) throw new SysfsError('write', '', 'EBUSY', 'the vGPU is in use by a VM');
    g.mdevs.delete(m.uuid);
  }
}
