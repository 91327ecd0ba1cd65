/**
 * The sysfs port: the only module that reads or writes /sys and /dev.
 *
 * Every path is assembled here from names that passed a grammar in names.ts,
 * then handed to a backend (the host's disk or the simulator). Every write
 * vmgpu ever makes to the kernel is one of the `write*`/`set*`/`create*`/
 * `remove*`/`bind*` methods at the bottom of this class: read them to know
 * exactly what vmgpu can do to a machine.
 */
import type { Root, SysfsBackend } from './backend.js';
import { SysfsError, isSysfsError } from './errors.js';
import { parseDecimal, parseDriverName, parseKernelRelease, parseMdevTypeName, parseMdevUuid, parseVfioDevName, type DriverName, type MdevTypeName, type MdevUuid } from './names.js';
import { checkPciAddress, isPciAddress, type PciAddress } from '../model/pci.js';

/** PCI attribute files the inventory reads. Nothing outside this list can be read. */
const PCI_ATTRS = [
  'vendor',
  'device',
  'subsystem_vendor',
  'subsystem_device',
  'class',
  'revision',
  'numa_node',
  'driver_override',
  'sriov_totalvfs',
  'sriov_numvfs',
  'sriov_offset',
  'sriov_stride',
  'reset_method',
  'modalias',
  'local_cpulist',
] as const;
export type PciAttr = (typeof PCI_ATTRS)[number];

/** Files in a VF's `nvidia/` directory (SR-IOV vGPU). */
const NVIDIA_VF_ATTRS = [
  'creatable_vgpu_types',
  'current_vgpu_type',
  'vgpu_params',
  'gpu_instance_id',
  'placement_id',
] as const;
export type NvidiaVfAttr = (typeof NVIDIA_VF_ATTRS)[number];

/** Files in an mdev type directory. */
const MDEV_TYPE_ATTRS = ['name', 'description', 'available_instances', 'device_api'] as const;
export type MdevTypeAttr = (typeof MDEV_TYPE_ATTRS)[number];

/** A directory entry that did not parse as the name it should be. */
export interface SkippedEntry {
  path: string;
  entry: string;
  reason: string;
}

const bus = (a: PciAddress) => `bus/pci/devices/${checkPciAddress(a)}`;

export class SysfsPort {
  constructor(readonly backend: SysfsBackend) {}

  /** Path as a user would see it, for messages. */
  display(root: Root, rel: string): string {
    return this.backend.display(root, rel);
  }

  // ---------------------------------------------------------------- reads

  /** Is there a sysfs tree at the root at all? */
  sysfsPresent(): boolean {
    return this.backend.exists('sys', 'bus/pci/devices');
  }

  /** All PCI functions; entries that are not PCI addresses are reported, not followed. */
  listPciDevices(skipped?: SkippedEntry[]): PciAddress[] {
    const out: PciAddress[] = [];
    for (const entry of this.backend.list('sys', 'bus/pci/devices')) {
      if (isPciAddress(entry)) out.push(entry);
      else skipped?.push({ path: this.display('sys', 'bus/pci/devices'), entry, reason: 'not a PCI address' });
    }
    return out.sort();
  }

  /** Whether the function exists (a GPU that fell off the bus does not). */
  pciDeviceExists(addr: PciAddress): boolean {
    return this.backend.exists('sys', bus(addr));
  }

  /** An attribute's text with surrounding white space removed; undefined when the file does not exist. */
  readPciAttr(addr: PciAddress, attr: PciAttr): string | undefined {
    if (!PCI_ATTRS.includes(attr)) throw new Error(`internal error: ${attr} is not a known PCI attribute`);
    return this.readOptional('sys', `${bus(addr)}/${attr}`);
  }

  /** The last path component of a link under the device (`driver`, `iommu_group`, `physfn`), or undefined. */
  readPciLink(addr: PciAddress, link: 'driver' | 'iommu_group' | 'physfn'): string | undefined {
    const rel = `${bus(addr)}/${link}`;
    let target: string;
    try {
      // One readlink(2): EINVAL (not a link) and ENOENT/ENOTDIR (nothing there) both mean "no link".
      target = this.backend.readlink('sys', rel);
    } catch (err) {
      if (isSysfsError(err, 'EINVAL', 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
    return target.split('/').filter(Boolean).pop();
  }

  /**
   * The PCIe root complex a function sits under (`pci0000:17`), from the
   * target of `bus/pci/devices/<addr>` (`../../../devices/pci0000:17/...`):
   * the value of the standard DRA attribute resource.kubernetes.io/pcieRoot.
   * Undefined when the link is missing or does not lead through /sys/devices/pciDDDD:BB.
   */
  readPcieRoot(addr: PciAddress): string | undefined {
    let target: string;
    try {
      target = this.backend.readlink('sys', bus(addr));
    } catch (err) {
      if (isSysfsError(err, 'EINVAL', 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
    const parts = target.split('/');
    const at = parts.indexOf('devices');
    const root = at >= 0 ? parts[at + 1] : undefined;
    return root !== undefined && /^pci[0-9a-f]{4}:[0-9a-f]{2}$/.test(root) && parts[parts.length - 1] === addr ? root : undefined;
  }

  /** Whether a link under the device exists but points nowhere (dangling). */
  isDanglingLink(addr: PciAddress, link: 'driver' | 'iommu_group' | 'physfn'): boolean {
    const rel = `${bus(addr)}/${link}`;
    return this.backend.kind('sys', rel) === 'link' && !this.backend.exists('sys', rel);
  }

  /** The SR-IOV VFs of a PF as `{index, address}` from its `virtfnN` links. */
  listVirtfns(pf: PciAddress, skipped?: SkippedEntry[]): { index: number; address: PciAddress }[] {
    const out: { index: number; address: PciAddress }[] = [];
    for (const entry of this.backend.list('sys', bus(pf))) {
      const m = /^virtfn([0-9]{1,4})$/.exec(entry);
      if (!m) continue;
      const target = this.backend.readlink('sys', `${bus(pf)}/${entry}`).split('/').pop() ?? '';
      if (isPciAddress(target)) out.push({ index: Number(m[1]), address: target });
      else skipped?.push({ path: this.display('sys', `${bus(pf)}/${entry}`), entry: target, reason: 'link target is not a PCI address' });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** The VFIO character device name (`vfioN`) from `<dev>/vfio-dev/`, if the function has one. */
  readVfioDev(addr: PciAddress): string | undefined {
    const names = this.listOptional(`${bus(addr)}/vfio-dev`)?.filter((n) => /^vfio[0-9]+$/.test(n));
    return names?.[0];
  }

  /** Whether `<dev>/nvidia/` exists (a VF under NVIDIA's vGPU manager). */
  hasNvidiaDir(addr: PciAddress): boolean {
    return this.backend.exists('sys', `${bus(addr)}/nvidia`);
  }

  readNvidiaAttr(addr: PciAddress, attr: NvidiaVfAttr): string | undefined {
    if (!NVIDIA_VF_ATTRS.includes(attr)) throw new Error(`internal error: ${attr} is not a known nvidia attribute`);
    return this.readOptional('sys', `${bus(addr)}/nvidia/${attr}`, false);
  }

  /** Whether the device is an mdev parent (has `mdev_supported_types`). */
  hasMdevSupportedTypes(addr: PciAddress): boolean {
    return this.backend.exists('sys', `${bus(addr)}/mdev_supported_types`);
  }

  /** Entries of `/sys/class/mdev_bus` (parents), or [] when the class does not exist. */
  listMdevBus(skipped?: SkippedEntry[]): PciAddress[] {
    if (!this.backend.exists('sys', 'class/mdev_bus')) return [];
    return this.filterPci(this.backend.list('sys', 'class/mdev_bus'), 'class/mdev_bus', skipped);
  }

  mdevBusPresent(): boolean {
    return this.backend.exists('sys', 'class/mdev_bus');
  }

  listMdevTypes(parent: PciAddress, skipped?: SkippedEntry[]): MdevTypeName[] {
    const rel = `${bus(parent)}/mdev_supported_types`;
    const out: MdevTypeName[] = [];
    for (const entry of this.backend.list('sys', rel)) {
      try {
        out.push(parseMdevTypeName(entry));
      } catch {
        skipped?.push({ path: this.display('sys', rel), entry, reason: 'not an mdev type name' });
      }
    }
    return out.sort(compareTypeDirs);
  }

  readMdevTypeAttr(parent: PciAddress, type: MdevTypeName, attr: MdevTypeAttr): string | undefined {
    if (!MDEV_TYPE_ATTRS.includes(attr)) throw new Error(`internal error: ${attr} is not a known mdev type attribute`);
    return this.readOptional('sys', `${bus(parent)}/mdev_supported_types/${parseMdevTypeName(type)}/${attr}`);
  }

  /** UUIDs of the instances of one type on one parent. */
  listMdevTypeDevices(parent: PciAddress, type: MdevTypeName): MdevUuid[] {
    const rel = `${bus(parent)}/mdev_supported_types/${parseMdevTypeName(type)}/devices`;
    if (!this.backend.exists('sys', rel)) return [];
    return this.filterUuids(this.backend.list('sys', rel));
  }

  /** UUIDs of the mdev instances whose parent is this device (its UUID-named child directories). */
  listMdevChildren(parent: PciAddress): MdevUuid[] {
    return this.filterUuids(this.backend.list('sys', bus(parent)));
  }

  /** All mdev instances on the node (`/sys/bus/mdev/devices`). */
  listMdevs(skipped?: SkippedEntry[]): MdevUuid[] {
    if (!this.backend.exists('sys', 'bus/mdev/devices')) return [];
    return this.filterUuids(this.backend.list('sys', 'bus/mdev/devices'), 'bus/mdev/devices', skipped);
  }

  mdevExists(uuid: MdevUuid): boolean {
    return this.backend.exists('sys', `bus/mdev/devices/${parseMdevUuid(uuid)}`);
  }

  /** An mdev instance's type directory and parent, from its links. */
  readMdev(uuid: MdevUuid): { type: MdevTypeName; parent: PciAddress; iommuGroup?: number; vgpuParams?: string } | undefined {
    const u = parseMdevUuid(uuid);
    const rel = `bus/mdev/devices/${u}`;
    if (this.backend.kind('sys', rel) !== 'link') return undefined;
    const devPath = this.backend.readlink('sys', rel).split('/').filter(Boolean);
    const parent = devPath[devPath.length - 2] ?? '';
    const type = this.backend.readlink('sys', `${rel}/mdev_type`).split('/').filter(Boolean).pop() ?? '';
    if (!isPciAddress(parent)) throw new SysfsError('readlink', this.display('sys', rel), 'EINVAL', `parent ${JSON.stringify(parent)} is not a PCI address`);
    const groupLink = `${rel}/iommu_group`;
    const group = this.backend.kind('sys', groupLink) === 'link' ? this.backend.readlink('sys', groupLink).split('/').pop() : undefined;
    const params = this.readOptional('sys', `${rel}/nvidia/vgpu_params`);
    return {
      type: parseMdevTypeName(type),
      parent,
      ...(group !== undefined && /^[0-9]+$/.test(group) ? { iommuGroup: Number(group) } : {}),
      ...(params !== undefined ? { vgpuParams: params } : {}),
    };
  }

  /** An mdev's `nvidia/gpu_instance_id` (the GPU instance a MIG-backed vGPU sits on), or undefined when absent. */
  readMdevGpuInstanceId(uuid: MdevUuid): string | undefined {
    return this.readOptional('sys', `bus/mdev/devices/${parseMdevUuid(uuid)}/nvidia/gpu_instance_id`);
  }

  /** IOMMU present: `/sys/class/iommu/*` non-empty. */
  iommuEnabled(): boolean {
    if (!this.backend.exists('sys', 'class/iommu')) return false;
    return this.backend.list('sys', 'class/iommu').length > 0;
  }

  /** Members of an IOMMU group, from `/sys/kernel/iommu_groups/<n>/devices`. */
  listIommuGroupMembers(group: number): PciAddress[] {
    const rel = `kernel/iommu_groups/${parseDecimal('IOMMU group', group)}/devices`;
    const entries = this.listOptional(rel);
    return entries ? this.filterPci(entries, rel) : [];
  }

  /** Loaded kernel modules of interest that appear under /sys/module. */
  listModules(names: readonly string[]): string[] {
    return names.filter((n) => this.backend.exists('sys', `module/${parseDriverName(n)}`));
  }

  /** `/sys/module/<name>/version`, e.g. the NVIDIA driver version. */
  readModuleVersion(name: string): string | undefined {
    return this.readOptional('sys', `module/${parseDriverName(name)}/version`);
  }

  /** Whether a PCI driver is registered (`/sys/bus/pci/drivers/<name>`). */
  driverRegistered(name: string): boolean {
    return this.backend.exists('sys', `bus/pci/drivers/${parseDriverName(name)}`);
  }

  listDrivers(): string[] {
    if (!this.backend.exists('sys', 'bus/pci/drivers')) return [];
    return this.backend.list('sys', 'bus/pci/drivers').filter((d) => /^[A-Za-z0-9_-]+$/.test(d)).sort();
  }

  /** `/dev/vfio/<group>` exists. */
  vfioGroupNodeExists(group: number): boolean {
    return this.backend.exists('dev', `vfio/${parseDecimal('IOMMU group', group)}`);
  }

  /** `/dev/vfio/devices/vfioN` exists. */
  vfioCdevNodeExists(name: string): boolean {
    return this.backend.exists('dev', `vfio/devices/${parseVfioDevName(name)}`);
  }

  vfioContainerNodeExists(): boolean {
    return this.backend.exists('dev', 'vfio/vfio');
  }

  iommufdNodeExists(): boolean {
    return this.backend.exists('dev', 'iommu');
  }

  /** `/lib/modules/<release>/modules.alias` under the host root, if present. */
  readModulesAlias(kernelRelease: string): string | undefined {
    return this.readOptional('host', `lib/modules/${parseKernelRelease(kernelRelease)}/modules.alias`, false);
  }

  /** Whether NVIDIA's `sriov-manage` is installed under the host root. */
  sriovManageInstalled(): boolean {
    return this.backend.exists('host', 'usr/lib/nvidia/sriov-manage');
  }

  /** The host path of `sriov-manage`, for running it. */
  sriovManagePath(): string {
    return this.display('host', 'usr/lib/nvidia/sriov-manage');
  }

  // ---------------------------------------------------------------- writes
  // Every write vmgpu makes to the kernel is below. Values are written without a
  // trailing newline (some NVIDIA driver versions reject one), as one write(2).

  /** Enable or disable SR-IOV VFs on a PF: `<pf>/sriov_numvfs`. */
  writeSriovNumVfs(pf: PciAddress, count: number): void {
    this.backend.write('sys', `${bus(pf)}/sriov_numvfs`, String(parseDecimal('VF count', count)));
  }

  /** Program a VF with a vGPU type (0 clears it): `<vf>/nvidia/current_vgpu_type`. */
  writeCurrentVgpuType(vf: PciAddress, typeId: number): void {
    this.backend.write('sys', `${bus(vf)}/nvidia/current_vgpu_type`, String(parseDecimal('vGPU type ID', typeId)));
  }

  /** Set `vgpu_params` on a VF (`<vf>/nvidia/vgpu_params`). */
  writeVfVgpuParams(vf: PciAddress, params: string): void {
    this.backend.write('sys', `${bus(vf)}/nvidia/vgpu_params`, checkParams(params));
  }

  /** Set `vgpu_params` on an mdev (`/sys/bus/mdev/devices/<uuid>/nvidia/vgpu_params`). */
  writeMdevVgpuParams(uuid: MdevUuid, params: string): void {
    this.backend.write('sys', `bus/mdev/devices/${parseMdevUuid(uuid)}/nvidia/vgpu_params`, checkParams(params));
  }

  /** Create an mdev instance: write its UUID to `<parent>/mdev_supported_types/<type>/create`. */
  createMdev(parent: PciAddress, type: MdevTypeName, uuid: MdevUuid): void {
    this.backend.write('sys', `${bus(parent)}/mdev_supported_types/${parseMdevTypeName(type)}/create`, parseMdevUuid(uuid));
  }

  /** Remove an mdev instance: write `1` to `/sys/bus/mdev/devices/<uuid>/remove`. */
  removeMdev(uuid: MdevUuid): void {
    this.backend.write('sys', `bus/mdev/devices/${parseMdevUuid(uuid)}/remove`, '1');
  }

  /** Set `<dev>/driver_override`; null clears it (the kernel takes a lone newline as "none"). */
  writeDriverOverride(addr: PciAddress, driver: DriverName | null): void {
    this.backend.write('sys', `${bus(addr)}/driver_override`, driver === null ? '\n' : parseDriverName(driver));
  }

  /** Unbind a function from its driver: write its address to `<dev>/driver/unbind`. */
  unbindDriver(addr: PciAddress): void {
    this.backend.write('sys', `${bus(addr)}/driver/unbind`, checkPciAddress(addr));
  }

  /** Bind a function to a driver: write its address to `/sys/bus/pci/drivers/<driver>/bind`. */
  bindDriver(driver: DriverName, addr: PciAddress): void {
    this.backend.write('sys', `bus/pci/drivers/${parseDriverName(driver)}/bind`, checkPciAddress(addr));
  }

  /** Ask the kernel to probe drivers for a function (honours driver_override): `/sys/bus/pci/drivers_probe`. */
  probeDriver(addr: PciAddress): void {
    this.backend.write('sys', 'bus/pci/drivers_probe', checkPciAddress(addr));
  }

  // ---------------------------------------------------------------- helpers

  private readOptional(root: Root, rel: string, trim = true): string | undefined {
    try {
      const text = this.backend.read(root, rel);
      return trim ? text.trim() : text;
    } catch (err) {
      if (isSysfsError(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  /** Directory entries, or undefined when the directory does not exist (one syscall instead of stat + list). */
  private listOptional(rel: string): string[] | undefined {
    try {
      return this.backend.list('sys', rel);
    } catch (err) {
      if (isSysfsError(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  private filterPci(entries: string[], rel: string, skipped?: SkippedEntry[]): PciAddress[] {
    const out: PciAddress[] = [];
    for (const e of entries) {
      if (isPciAddress(e)) out.push(e);
      else skipped?.push({ path: this.display('sys', rel), entry: e, reason: 'not a PCI address' });
    }
    return out.sort();
  }

  private filterUuids(entries: string[], rel?: string, skipped?: SkippedEntry[]): MdevUuid[] {
    const out: MdevUuid[] = [];
    for (const e of entries) {
      try {
        out.push(parseMdevUuid(e));
      } catch {
        if (rel) skipped?.push({ path: this.display('sys', rel), entry: e, reason: 'not an mdev UUID' });
      }
    }
    return out.sort();
  }
}

function compareTypeDirs(a: string, b: string): number {
  const na = Number(a.split('-').pop());
  const nb = Number(b.split('-').pop());
  return na - nb || a.localeCompare(b);
}

/** vgpu_params: comma-separated key=value pairs, nothing else. */
function checkParams(params: string): string {
  if (/^([A-Za-z0-9_]+=[A-Za-z0-9_.:-]*)(,[A-Za-z0-9_]+=[A-Za-z0-9_.:-]*)*$/.test(params) || params === '') return params;
  throw new SysfsError('write', 'vgpu_params', 'EINVAL', `${JSON.stringify(params)} is not a comma-separated key=value list`);
}
