/**
 * What the simulated node shows under /sys, /dev and the host root, rendered
 * from the driver's state (kernel.ts): drivers and modules, the IOMMU, each
 * PCI function, SR-IOV and the NVIDIA vGPU files of the VFs, mdev types and
 * instances. Attribute files read the state when read and call the driver when
 * written. The tree is rendered again, lazily, after the devices change shape;
 * creating or removing an mdev patches the current tree instead.
 */
import { SysfsError } from '../sysfs/errors.js';
import type { SimKernel } from './kernel.js';
import { simModel, type SimType } from './hardware.js';
import { availableInstances, creatable, mdevParents } from './rules.js';
import type { SimFn, SimGpu, SimMdev, SimVf } from './state.js';
import { chardev, dir, file, link, mkdirp, put, text, unput, type Trees, type VDir } from './vfs.js';

const VGPU_MODULES = ['nvidia_vgpu_vfio'];

const devPath = (fn: SimFn): string => `devices/pci0000:${fn.bus}/${fn.addr}`;

/**
 * `nvidia/gpu_instance_id`: the instance a MIG-backed vGPU sits on, else -1.
 * (A real driver was reported to answer ENXIO until there is one; vmgpu reads
 * both as "none", and a file that fails to read could not be materialised.)
 */
const giText = (gi: number | null): string => `${gi ?? -1}\n`;

export class SimTree {
  private tree: Trees | null = null;

  /** `patched`: the current tree was changed in place (the backend must resolve paths again). */
  constructor(
    private readonly kernel: SimKernel,
    private readonly patched: () => void,
  ) {}

  /** The current file trees (rendered again after `invalidate`). */
  current(): Trees {
    return (this.tree ??= this.build());
  }

  invalidate(): void {
    this.tree = null;
  }

  private build(): Trees {
    const sys = dir();
    const dev = dir();
    const host = dir();
    this.buildDrivers(sys);
    this.buildModules(sys);
    this.buildIommu(sys, dev);
    const anyMdev = this.kernel.gpus.some((g) => g.present && mdevParents(g, this.kernel.vgpuHostDriver).length > 0);
    if (anyMdev) mkdirp(sys, 'class/mdev_bus');
    if (anyMdev) mkdirp(sys, 'bus/mdev/devices');
    for (const fn of this.kernel.functions()) this.buildFunction(sys, dev, fn);
    for (const g of this.kernel.gpus) {
      if (!g.present) continue;
      this.buildSriov(sys, g);
      for (const parent of mdevParents(g, this.kernel.vgpuHostDriver)) this.buildMdev(sys, dev, g, parent);
    }
    if (this.kernel.sriovManage) put(host, 'usr/lib/nvidia/sriov-manage', text('#!/bin/sh\n# simulated\n'));
    put(host, `lib/modules/${this.kernel.kernelRelease}/modules.alias`, text(this.modulesAlias()));
    return { sys, dev, host };
  }

  private buildDrivers(sys: VDir): void {
    const drivers = new Set(['nvidia', 'vfio-pci']);
    if (this.kernel.gpus.some((g) => g.audio)) drivers.add('snd_hda_intel');
    if (this.kernel.variantModels.size) drivers.add('nvgrace_gpu_vfio_pci');
    for (const d of drivers) {
      const base = `bus/pci/drivers/${d}`;
      mkdirp(sys, base);
      put(sys, `${base}/bind`, file(() => '', (data) => this.kernel.driverBindWrite(d, data)));
      put(sys, `${base}/unbind`, file(() => '', (data) => this.kernel.driverUnbindWrite(d, data)));
      put(sys, `${base}/new_id`, file(() => '', () => {}));
      put(sys, `${base}/remove_id`, file(() => '', () => {}));
      put(sys, `${base}/module`, link(`../../../../module/${d.replace(/-/g, '_')}`));
    }
    put(sys, 'bus/pci/drivers_probe', file(() => '', (data) => this.kernel.probeWrite(data)));
    mkdirp(sys, 'bus/pci/devices');
  }

  private buildModules(sys: VDir): void {
    const modules = ['nvidia', 'nvidia_uvm', 'vfio', 'vfio_pci', 'vfio_pci_core', 'vfio_iommu_type1', 'kvm', 'kvm_intel'];
    if (this.kernel.vgpuHostDriver) modules.push(...VGPU_MODULES);
    if (this.kernel.gpus.some((g) => g.model.framework === 'mdev')) modules.push('mdev');
    if (this.kernel.iommufd) modules.push('iommufd');
    if (this.kernel.gpus.some((g) => g.audio)) modules.push('snd_hda_intel');
    if (this.kernel.variantModels.size) modules.push('nvgrace_gpu_vfio_pci');
    for (const m of modules) mkdirp(sys, `module/${m}`);
    put(sys, 'module/nvidia/version', text(`${this.kernel.driver.version}\n`));
  }

  private buildIommu(sys: VDir, dev: VDir): void {
    const removed = this.kernel.removedDevNodes;
    if (this.kernel.iommu) {
      mkdirp(sys, 'devices/virtual/iommu/dmar0');
      put(sys, 'class/iommu/dmar0', link('../../devices/virtual/iommu/dmar0'));
      if (!removed.has('vfio/vfio')) put(dev, 'vfio/vfio', chardev());
      if (this.kernel.iommufd && !removed.has('iommu')) put(dev, 'iommu', chardev());
    } else {
      mkdirp(sys, 'class/iommu');
    }
    mkdirp(sys, 'kernel/iommu_groups');
  }

  private buildFunction(sys: VDir, dev: VDir, fn: SimFn): void {
    const p = devPath(fn);
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
    this.buildBinding(sys, dev, fn);
    if (fn.kind === 'vf') {
      const vf = fn.gpu.vfs.find((v) => v.fn === fn)!;
      put(sys, `${p}/physfn`, link(`../${fn.gpu.pf.addr}`));
      if (fn.driver === 'nvidia' && this.kernel.vgpuHostDriver && fn.gpu.model.framework === 'sriov') this.buildVfNvidia(sys, `${p}/nvidia`, fn.gpu, vf);
    }
  }

  /** A function's driver link, its IOMMU group, and its VFIO device nodes when a VFIO driver (or nvidia, for a VF) holds it. */
  private buildBinding(sys: VDir, dev: VDir, fn: SimFn): void {
    const p = devPath(fn);
    if (fn.driver) {
      put(sys, `${p}/driver`, link(`../../../bus/pci/drivers/${fn.driver}`));
      put(sys, `bus/pci/drivers/${fn.driver}/${fn.addr}`, link(`../../../../${p}`));
    }
    if (fn.group !== null) {
      put(sys, `${p}/iommu_group`, link(`../../../kernel/iommu_groups/${fn.group}`));
      put(sys, `kernel/iommu_groups/${fn.group}/devices/${fn.addr}`, link(`../../../../${p}`));
      const vfioBound = fn.driver !== null && (/vfio/.test(fn.driver) || (fn.kind === 'vf' && fn.driver === 'nvidia'));
      if (vfioBound && !this.kernel.removedDevNodes.has(String(fn.group))) put(dev, `vfio/${fn.group}`, chardev());
    }
    if (fn.vfio !== null && fn.driver !== null) {
      put(sys, `${p}/vfio-dev/vfio${fn.vfio}/dev`, text(`511:${fn.vfio}\n`));
      if (!this.kernel.removedDevNodes.has(`vfio/devices/vfio${fn.vfio}`)) put(dev, `vfio/devices/vfio${fn.vfio}`, chardev());
    }
  }

  private buildVfNvidia(sys: VDir, p: string, gpu: SimGpu, vf: SimVf): void {
    put(
      sys,
      `${p}/creatable_vgpu_types`,
      file(() => ['ID    : vGPU Name', ...creatable(gpu, vf).map((t) => `${t.id} : ${t.name}`)].join('\n') + '\n'),
    );
    put(sys, `${p}/current_vgpu_type`, file(() => `${vf.typeId}\n`, (data) => this.kernel.writeVgpuType(gpu, vf, data)));
    put(
      sys,
      `${p}/vgpu_params`,
      file(
        () => `${vf.params}\n`,
        (data) => {
          if (this.kernel.isHeld(vf.fn.addr)) throw new SysfsError('write', '', 'EBUSY', 'the VF is in use by a VM');
          vf.params = data.trim();
        },
      ),
    );
    put(sys, `${p}/gpu_instance_id`, file(() => giText(vf.gi)));
    put(sys, `${p}/placement_id`, file(() => `${vf.typeId === 0 ? -1 : vf.index}\n`));
  }

  private buildSriov(sys: VDir, g: SimGpu): void {
    if (g.model.totalVfs === 0) return;
    const p = devPath(g.pf);
    put(sys, `${p}/sriov_totalvfs`, text(`${g.model.totalVfs}\n`));
    put(sys, `${p}/sriov_numvfs`, file(() => `${g.vfs.length}\n`, (data) => this.kernel.writeNumVfs(g, data)));
    put(sys, `${p}/sriov_offset`, text(`${g.model.vfOffset}\n`));
    put(sys, `${p}/sriov_stride`, text(`${g.model.vfStride}\n`));
    for (const v of g.vfs) put(sys, `${p}/virtfn${v.index}`, link(`../${v.fn.addr}`));
  }

  private buildMdev(sys: VDir, dev: VDir, g: SimGpu, parent: SimFn): void {
    const p = devPath(parent);
    put(sys, `class/mdev_bus/${parent.addr}`, link(`../../${p}`));
    for (const t of g.types) {
      const tp = `${p}/mdev_supported_types/nvidia-${t.id}`;
      put(sys, `${tp}/name`, text(`${t.name}\n`));
      put(
        sys,
        `${tp}/description`,
        text(`num_heads=${t.series === 'C' ? 0 : 4}, frl_config=${t.series === 'C' ? 0 : 60}, framebuffer=${t.framebufferMiB}M, max_resolution=${t.series === 'C' ? '0x0' : '5120x2880'}, max_instance=${t.maxInstances}\n`),
      );
      put(sys, `${tp}/available_instances`, file(() => `${availableInstances(g, t, parent)}\n`));
      put(sys, `${tp}/device_api`, text('vfio-pci\n'));
      put(sys, `${tp}/create`, file(() => '', (data) => this.mdevCreate(g, parent, t, data)));
      mkdirp(sys, `${tp}/devices`);
    }
    for (const m of g.mdevs.values()) if (m.parent === parent) this.buildMdevInstance(sys, dev, m);
  }

  /** One mdev's nodes; also used to add a created mdev to the current tree without rebuilding it. */
  private buildMdevInstance(sys: VDir, dev: VDir, m: SimMdev): void {
    const g = m.gpu;
    const p = devPath(m.parent);
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
          if (this.kernel.isHeld(m.uuid)) throw new SysfsError('write', '', 'EBUSY', 'the vGPU is in use by a VM');
          m.params = data.trim();
        },
      ),
    );
    put(sys, `${mp}/nvidia/gpu_instance_id`, file(() => giText(m.gi)));
    put(sys, `${p}/mdev_supported_types/nvidia-${m.type.id}/devices/${m.uuid}`, link(`../../../${m.uuid}`));
    put(sys, `bus/mdev/devices/${m.uuid}`, link(`../../../${mp}`));
    put(sys, `kernel/iommu_groups/${m.group}/devices/${m.uuid}`, link(`../../../../${mp}`));
    if (!this.kernel.removedDevNodes.has(String(m.group))) put(dev, `vfio/${m.group}`, chardev());
  }

  private modulesAlias(): string {
    const lines = ['# Aliases extracted from modules themselves.', 'alias pci:v000010DEd*sv*sd*bc03sc02i00* nvidia', 'alias pci:v000010DEd*sv*sd*bc03sc00i00* nvidia'];
    for (const key of this.kernel.variantModels) {
      const m = simModel(key);
      lines.push(`alias vfio_pci:v000010DEd0000${m.deviceId.toUpperCase()}sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci`);
    }
    lines.push('alias pci:v*d*sv*sd*bc04sc03i* snd_hda_intel');
    return lines.join('\n') + '\n';
  }

  private mdevCreate(g: SimGpu, parent: SimFn, t: SimType, data: string): void {
    const m = this.kernel.mdevCreate(g, parent, t, data);
    // Patch the current tree instead of rebuilding it: a rebuild per create made filling 8 x A100 take seconds.
    if (this.tree) this.buildMdevInstance(this.tree.sys, this.tree.dev, m);
    this.patched();
  }

  private mdevRemove(g: SimGpu, m: SimMdev, data: string): void {
    this.kernel.mdevRemove(g, m, data);
    if (this.tree) {
      // Patch the current tree: the nodes buildMdevInstance made.
      const { sys, dev } = this.tree;
      const p = devPath(m.parent);
      unput(sys, `${p}/${m.uuid}`);
      unput(sys, `${p}/mdev_supported_types/nvidia-${m.type.id}/devices/${m.uuid}`);
      unput(sys, `bus/mdev/devices/${m.uuid}`);
      unput(sys, `kernel/iommu_groups/${m.group}`);
      unput(dev, `vfio/${m.group}`);
    }
    this.patched();
  }
}
