/**
 * readInventory: the node's GPUs as plain data, read through the sysfs port.
 *
 * Never throws for one bad file: a malformed attribute, a dangling link or an
 * unknown device becomes a warning naming the file, and the rest of the
 * inventory is still returned. It throws InventoryError only when there is no
 * sysfs tree to read at all.
 */
import { SysfsError } from '../sysfs/errors.js';
import type { HostTools } from '../sysfs/host-tools.js';
import { checkPciAddress, type PciAddress } from '../model/pci.js';
import type { SkippedEntry, SysfsPort } from '../sysfs/port.js';
import { parseCreatableVgpuTypes, parseMdevDescription, parseNvidiaSmiSupportedTypes, toVgpuType, type CatalogEntry } from './catalog.js';
import type { CatalogCache } from './catalog-cache.js';
import { knownModel } from '../model/models.js';
import { RELEVANT_MODULES } from '../model/modules.js';
import { PciIds, deviceDisplayName } from './pciids.js';
import { boardForDevice } from '../model/boards.js';
import { readGpuInstanceId, readMdevGpuInstances, readMigState } from './mig.js';
import { readNvlinkIslands } from './topology.js';
import { capabilitiesOf, frameworkOf } from './capabilities.js';
import {
  INVENTORY_SCHEMA_VERSION,
  type Capabilities,
  type Gpu,
  type GpuModel,
  type Inventory,
  type MdevInstance,
  type MdevParent,
  type MdevTypeInfo,
  type NodeInfo,
  type PciFunction,
  type VgpuType,
  type VgpuVf,
  type Warning,
} from './types.js';

/** The parts of a VF the inventory reports (see Reader.readVf). */
interface VfFacts {
  address: string;
  iommuGroup: number | null;
  numaNode: number;
  driver: string | null;
  vfioDev: string | null;
}

export class InventoryError extends Error {
  override readonly name = 'InventoryError';
}

export interface InventoryOptions {
  pciIds?: PciIds;
  /** On-disk ID→name cache, read to name configured VFs (the machine records what free VFs show; a read never writes). */
  catalogCache?: CatalogCache;
  kernelRelease?: string | null;
}

const NVIDIA = '10de';
const GPU_CLASSES = new Set(['0300', '0302']);

export function readInventory(port: SysfsPort, opts: InventoryOptions = {}): Inventory {
  if (!port.sysfsPresent()) {
    throw new InventoryError(
      `no PCI devices directory at ${port.display('sys', 'bus/pci/devices')}: is --sysfs-root pointing at a sysfs tree (a host's /sys, a capture or a simulator tree)?`,
    );
  }
  const r = new Reader(port, opts);
  return r.read();
}

class Reader {
  private readonly warnings: Warning[] = [];
  private readonly fns = new Map<string, PciFunction>();
  private readonly ids: PciIds;
  // Facts read once and reused, so a VF costs as few syscalls as possible (bench/inventory.bench.ts):
  /** Entries of bus/pci/devices. */
  private devices = new Set<string>();
  /** Registered PCI drivers (bus/pci/drivers). */
  private drivers = new Set<string>();
  /** Entries of class/mdev_bus, or null when the class does not exist. */
  private mdevBus: Set<string> | null = null;
  /** vendor, class and physfn from the first pass (an absent key: not read yet). */
  private readonly early = new Map<string, { vendor?: string | undefined; cls?: string | undefined; physfn?: string | undefined }>();

  constructor(
    private readonly port: SysfsPort,
    private readonly opts: InventoryOptions,
  ) {
    this.ids = opts.pciIds ?? PciIds.empty();
  }

  read(): Inventory {
    const skipped: SkippedEntry[] = [];
    const all = this.port.listPciDevices(skipped);
    this.devices = new Set(all);
    const node = this.readNode();
    this.mdevBus = node.mdevBusPresent ? new Set(this.safe(() => this.port.listMdevBus()) ?? []) : null;
    // First pass: physfn, vendor and class only, to find NVIDIA GPUs (PFs) cheaply. A VF is never
    // a GPU of its own, so one readlink settles each of the (many) VFs.
    const pfs: PciAddress[] = [];
    for (const addr of all) {
      const early: { vendor?: string | undefined; cls?: string | undefined; physfn?: string | undefined } = { physfn: this.link(addr, 'physfn') };
      this.early.set(addr, early);
      if (early.physfn !== undefined) continue; // a VF
      const vendor = (early.vendor = this.hexAttr(addr, 'vendor', 4));
      if (vendor === undefined && !this.port.pciDeviceExists(addr)) {
        // Checked only when `vendor` is missing, so a healthy tree pays nothing for it.
        this.warn('dangling-link', `${this.port.display('sys', `bus/pci/devices/${addr}`)} points to a device directory that does not exist; ignored`, this.port.display('sys', `bus/pci/devices/${addr}`));
        continue;
      }
      if (vendor !== NVIDIA) continue;
      const cls = (early.cls = this.hexAttr(addr, 'class', 6));
      if (!cls || !GPU_CLASSES.has(cls.slice(0, 4))) continue;
      pfs.push(addr);
    }
    const gpus = pfs.map((pf, index) => this.readGpu(pf, index));
    if (!node.vgpuHostDriver && gpus.some((g) => g.framework === 'sriov-vgpu' || g.framework === 'mdev-vgpu')) node.vgpuHostDriver = true;
    for (const g of gpus) g.capabilities = capabilitiesOf(g, node, (addr) => this.fns.get(addr));
    const inGpus = new Set<string>();
    for (const g of gpus) {
      inGpus.add(g.pci.address);
      for (const v of g.pci.sriov?.vfs ?? []) inGpus.add(v);
    }
    const otherFunctions: PciFunction[] = [];
    for (const [addr, fn] of this.fns) if (!inGpus.has(addr)) otherFunctions.push(fn);
    for (const s of skipped) this.warn('unknown-entry', `${s.path}/${s.entry}: ${s.reason}; ignored`, `${s.path}/${s.entry}`);
    return {
      schemaVersion: INVENTORY_SCHEMA_VERSION,
      source: this.port.backend.description,
      node,
      gpus,
      otherFunctions: otherFunctions.sort((a, b) => a.address.localeCompare(b.address)),
      warnings: this.warnings,
    };
  }

  // ---------------------------------------------------------------- node

  private readNode(): NodeInfo {
    const modules = this.port.listModules(RELEVANT_MODULES);
    const registered = this.port.listDrivers();
    this.drivers = new Set(registered);
    const drivers = registered.filter((d) => /vfio/.test(d) || d === 'nvidia');
    return {
      iommuEnabled: this.port.iommuEnabled(),
      modules,
      mdevBusPresent: this.port.mdevBusPresent(),
      nvidiaDriverVersion: this.safe(() => this.port.readModuleVersion('nvidia')) ?? null,
      vgpuHostDriver: modules.includes('nvidia_vgpu_vfio'),
      kernelRelease: this.opts.kernelRelease ?? null,
      vfioDrivers: drivers,
    };
  }

  // ---------------------------------------------------------------- one GPU

  /** The VFs under the vGPU manager (those with an nvidia/ directory): their types, params and instances; free VFs' creatable lists fill the catalog. */
  private readVgpuVfs(pci: PciFunction, vfFns: VfFacts[], catalog: Map<number, VgpuType>, warnings: Warning[]): VgpuVf[] {
    const vfs: VgpuVf[] = [];
    let i = -1;
    for (const f of vfFns) {
      const a = checkPciAddress(f.address);
      // A VF under the vGPU manager has nvidia/current_vgpu_type; reading it answers "is there an
      // nvidia/ directory" too. Only when it cannot be read does the directory get its own stat.
      const currentText = this.safe(() => this.port.readNvidiaAttr(a, 'current_vgpu_type'), warnings);
      if (currentText === undefined && !this.port.hasNvidiaDir(a)) continue;
      i++;
      const current = this.decimalNvidia(a, 'current_vgpu_type', currentText, warnings);
      const creatableText = this.safe(() => this.port.readNvidiaAttr(a, 'creatable_vgpu_types'), warnings) ?? '';
      const creatable = parseCreatableVgpuTypes(creatableText);
      for (const e of creatable) {
        if (!catalog.has(e.id) || catalog.get(e.id)!.source === 'cache') catalog.set(e.id, toVgpuType(e, 'creatable'));
      }
      const params = this.safe(() => this.port.readNvidiaAttr(a, 'vgpu_params'), warnings);
      vfs.push({
        address: f.address,
        index: pci.sriov!.vfs.indexOf(f.address) >= 0 ? pci.sriov!.vfs.indexOf(f.address) : i,
        currentTypeId: current ?? 0,
        currentProfile: null,
        creatableTypeIds: creatable.map((e) => e.id),
        vgpuParams: params?.trim() || null,
        iommuGroup: f.iommuGroup,
        vfioDev: f.vfioDev,
        numaNode: f.numaNode,
        driver: f.driver,
        gpuInstanceId: current ? readGpuInstanceId(() => this.port.readNvidiaAttr(a, 'gpu_instance_id')) : null,
      });
    }
    return vfs;
  }

  /** Each VF's profile from the catalog; a type the catalog cannot name is a warning (it is unknown, never wrong). */
  private nameVfs(vfs: VgpuVf[], catalog: Map<number, VgpuType>, warnings: Warning[]): void {
    for (const v of vfs) v.currentProfile = v.currentTypeId ? (catalog.get(v.currentTypeId)?.profile ?? null) : null;
    const unnamed = vfs.filter((v) => v.currentTypeId && !v.currentProfile);
    if (unnamed.length === 0) return;
    const ids = [...new Set(unnamed.map((v) => v.currentTypeId))].join(', ');
    warnings.push({
      code: 'unknown-type-id',
      message: `${unnamed.length} VF(s) (${unnamed.map((v) => v.address).join(', ')}) have vGPU type ID ${ids}, which no free VF lists and the catalog cache does not know: the name shows once a VF of this GPU is free, the catalog cache has seen it, or nvidia-smi is available`,
      path: this.port.display('sys', `bus/pci/devices/${unnamed[0]!.address}/nvidia/current_vgpu_type`),
    });
  }

  /**
   * mdev parents: the PF, or its VFs (Ampere). Every parent is listed in /sys/class/mdev_bus;
   * without that class, look per function, but not on models that only do SR-IOV vGPU. Their
   * types join the catalog.
   */
  private readMdevParents(pci: PciFunction, model: GpuModel, vfFns: VfFacts[], catalog: Map<number, VgpuType>, warnings: Warning[]): MdevParent[] {
    const mdevParents: MdevParent[] = [];
    // Sibling parents (Ampere VFs) share their type directories' name, description and device_api.
    const typeFacts = new Map<string, { name: string; description: string; deviceApi: string | null }>();
    for (const cand of [{ address: pci.address }, ...vfFns]) {
      const a = checkPciAddress(cand.address);
      if (this.mdevBus ? !this.mdevBus.has(a) : model.vgpuFramework === 'sriov' || !this.port.hasMdevSupportedTypes(a)) continue;
      mdevParents.push(this.readMdevParent(a, typeFacts, warnings));
    }
    for (const p of mdevParents) {
      for (const t of p.types) {
        if (!catalog.has(t.id)) {
          const vt = toVgpuType({ id: t.id, name: t.name }, 'mdev');
          catalog.set(t.id, { ...vt, framebufferMiB: t.framebufferMiB ?? vt.framebufferMiB, maxInstances: t.maxInstances ?? vt.maxInstances });
        }
      }
    }
    return mdevParents;
  }

  private readGpu(pf: PciAddress, index: number): Gpu {
    const warnings: Warning[] = [];
    const pci = this.readFunction(pf);
    const model = this.model(pci);
    const vfFns = (pci.sriov?.vfs ?? []).map((a) => this.readVf(checkPciAddress(a)));
    // Catalog: creatable lists of free VFs, the cache, and mdev type directories.
    const catalog = new Map<number, VgpuType>();
    for (const e of this.cachedCatalog(pci)) catalog.set(e.id, toVgpuType(e, 'cache'));
    const vfs = this.readVgpuVfs(pci, vfFns, catalog, warnings);
    this.nameVfs(vfs, catalog, warnings);
    const mdevParents = this.readMdevParents(pci, model, vfFns, catalog, warnings);
    const framework = frameworkOf(pci, vfs, mdevParents);
    const companions = pci.iommuGroupMembers.filter((m) => m !== pci.address);
    for (const c of companions) this.readFunction(checkPciAddress(c));
    const gpu: Gpu = {
      index,
      pci,
      model,
      framework: framework.framework,
      unusableReason: framework.reason,
      capabilities: undefined as unknown as Capabilities, // filled once the node is known
      companions,
      catalog: [...catalog.values()].sort((a, b) => a.id - b.id),
      heterogeneousMode: null,
      mig: null,
      vfs,
      mdevParents,
      warnings,
    };
    readMdevGpuInstances(this.port, gpu);
    return gpu;
  }

  private cachedCatalog(pci: PciFunction): CatalogEntry[] {
    const version = this.safe(() => this.port.readModuleVersion('nvidia'));
    if (!this.opts.catalogCache || !version) return [];
    try {
      return this.opts.catalogCache.get(pci.deviceId, version) ?? [];
    } catch (err) {
      this.warn('catalog-cache', `could not read the catalog cache: ${(err as Error).message}`);
      return [];
    }
  }

  private readMdevParent(parent: PciAddress, typeFacts: Map<string, { name: string; description: string; deviceApi: string | null }>, warnings: Warning[]): MdevParent {
    const types: MdevTypeInfo[] = [];
    const skipped: SkippedEntry[] = [];
    for (const dir of this.port.listMdevTypes(parent, skipped)) {
      let facts = typeFacts.get(dir);
      if (!facts) {
        facts = {
          name: this.safe(() => this.port.readMdevTypeAttr(parent, dir, 'name'), warnings) ?? dir,
          description: this.safe(() => this.port.readMdevTypeAttr(parent, dir, 'description'), warnings) ?? '',
          deviceApi: this.safe(() => this.port.readMdevTypeAttr(parent, dir, 'device_api'), warnings) ?? null,
        };
        typeFacts.set(dir, facts);
      }
      const avail = this.safe(() => this.port.readMdevTypeAttr(parent, dir, 'available_instances'), warnings);
      const d = parseMdevDescription(facts.description);
      const vt = toVgpuType({ id: Number(dir.split('-').pop()), name: facts.name }, 'mdev');
      types.push({
        dir,
        id: vt.id,
        name: facts.name,
        profile: vt.profile,
        description: facts.description,
        availableInstances: avail !== undefined && /^[0-9]+$/.test(avail) ? Number(avail) : 0,
        deviceApi: facts.deviceApi,
        framebufferMiB: d.framebufferMiB ?? vt.framebufferMiB,
        maxInstances: d.maxInstance ?? vt.maxInstances,
      });
      if (avail !== undefined && !/^[0-9]+$/.test(avail)) {
        warnings.push({ code: 'malformed-attribute', message: `available_instances of ${dir} on ${parent} is ${JSON.stringify(avail)}, not a number`, path: this.port.display('sys', `bus/pci/devices/${parent}/mdev_supported_types/${dir}/available_instances`) });
      }
    }
    // Instances are the parent's UUID-named children: one directory listing instead of one per type.
    const instances: MdevInstance[] = [];
    for (const uuid of this.port.listMdevChildren(parent)) {
      const info = this.safe(() => this.port.readMdev(uuid), warnings);
      const typeDir = info?.type ?? null;
      if (!typeDir) continue;
      instances.push({
        uuid,
        typeDir,
        typeName: typeFacts.get(typeDir)?.name ?? null,
        parent,
        iommuGroup: info?.iommuGroup ?? null,
        vgpuParams: info?.vgpuParams?.trim() || null,
        gpuInstanceId: null,
      });
    }
    for (const s of skipped) warnings.push({ code: 'unknown-entry', message: `${s.entry} in ${s.path}: ${s.reason}; ignored`, path: s.path });
    return { address: parent, types, instances: instances.sort((a, b) => a.uuid.localeCompare(b.uuid)) };
  }

  private model(pci: PciFunction): GpuModel {
    const known = knownModel(pci.deviceId, pci.subsystemDeviceId);
    const board = boardForDevice(pci.deviceId, pci.subsystemDeviceId);
    if (known) return { name: known.name, profileBoard: known.board ?? board?.board ?? null, vgpuFramework: known.vgpuFramework };
    if (board) return { name: board.model.replace(/^NVIDIA /, ''), profileBoard: board.board, vgpuFramework: board.framework };
    return { name: pci.name, profileBoard: null, vgpuFramework: 'unknown' };
  }

  // ---------------------------------------------------------------- one PCI function

  private readFunction(addr: PciAddress): PciFunction {
    const have = this.fns.get(addr);
    if (have) return have;
    const early = this.early.get(addr) ?? {};
    const vendorId = ('vendor' in early ? early.vendor : this.hexAttr(addr, 'vendor', 4)) ?? '0000';
    const deviceId = this.hexAttr(addr, 'device', 4) ?? '0000';
    const classCode = ('cls' in early ? early.cls : this.hexAttr(addr, 'class', 6)) ?? '000000';
    const physfn = 'physfn' in early ? early.physfn : this.link(addr, 'physfn');
    const group = this.link(addr, 'iommu_group');
    const iommuGroup = group !== undefined && /^[0-9]+$/.test(group) ? Number(group) : null;
    if (group !== undefined && iommuGroup === null) this.warn('malformed-link', `iommu_group of ${addr} points to ${JSON.stringify(group)}, not a group number`, this.port.display('sys', `bus/pci/devices/${addr}/iommu_group`));
    const iommuGroupMembers = iommuGroup === null ? [] : (this.safe(() => this.port.listIommuGroupMembers(iommuGroup)) ?? []);
    // A group always holds the device itself; only an empty or missing one needs the (rarer) dangling check.
    if (iommuGroup !== null && !iommuGroupMembers.includes(addr)) this.checkDangling(addr, 'iommu_group');
    // A VF has no SR-IOV capability of its own: skip the four files it does not have.
    const total = physfn === undefined ? this.decimalAttr(addr, 'sriov_totalvfs') : undefined;
    let sriov: PciFunction['sriov'] = null;
    if (total !== undefined) {
      const skipped: SkippedEntry[] = [];
      const vfs = this.safe(() => this.port.listVirtfns(addr, skipped)) ?? [];
      for (const s of skipped) this.warn('malformed-link', `${s.path}: ${s.reason} (${JSON.stringify(s.entry)})`, s.path);
      sriov = {
        totalVfs: total,
        numVfs: this.decimalAttr(addr, 'sriov_numvfs') ?? 0,
        offset: this.decimalAttr(addr, 'sriov_offset') ?? null,
        stride: this.decimalAttr(addr, 'sriov_stride') ?? null,
        vfs: vfs.map((v) => v.address),
      };
    }
    const override = this.attr(addr, 'driver_override');
    const numa = this.attr(addr, 'numa_node');
    const fn: PciFunction = {
      address: addr,
      vendorId,
      deviceId,
      subsystemVendorId: this.hexAttr(addr, 'subsystem_vendor', 4) ?? null,
      subsystemDeviceId: this.hexAttr(addr, 'subsystem_device', 4) ?? null,
      classCode,
      revision: this.hexAttr(addr, 'revision', 2) ?? null,
      name: deviceDisplayName(this.ids, vendorId, deviceId),
      driver: this.link(addr, 'driver') ?? null,
      driverOverride: override === undefined || override === '(null)' || override === '' ? null : override,
      iommuGroup,
      iommuGroupMembers,
      numaNode: numa !== undefined && /^-?[0-9]+$/.test(numa) ? Number(numa) : -1,
      sriov,
      physfn: physfn ?? null,
      vfioDev: this.safe(() => this.port.readVfioDev(addr)) ?? null,
      resetMethods: (this.attr(addr, 'reset_method') ?? '').split(/\s+/).filter(Boolean),
      modalias: this.attr(addr, 'modalias') ?? null,
    };
    if (numa !== undefined && !/^-?[0-9]+$/.test(numa)) this.warn('malformed-attribute', `numa_node of ${addr} is ${JSON.stringify(numa)}, not a number; treated as unknown (-1)`, this.port.display('sys', `bus/pci/devices/${addr}/numa_node`));
    this.fns.set(addr, fn);
    return fn;
  }

  /**
   * What the inventory reports about a VF (VgpuVf): its IOMMU group, NUMA node, driver and
   * VFIO cdev. A VF's other attributes (IDs, class, override, reset method, modalias) are its
   * PF's or unused, and VFs are not listed as functions of their own, so they are not read:
   * with 32 VFs per GPU this halves the files an inventory opens.
   */
  private readVf(addr: PciAddress): VfFacts {
    const group = this.link(addr, 'iommu_group');
    const iommuGroup = group !== undefined && /^[0-9]+$/.test(group) ? Number(group) : null;
    if (group !== undefined && iommuGroup === null) this.warn('malformed-link', `iommu_group of ${addr} points to ${JSON.stringify(group)}, not a group number`, this.port.display('sys', `bus/pci/devices/${addr}/iommu_group`));
    const numa = this.attr(addr, 'numa_node');
    if (numa !== undefined && !/^-?[0-9]+$/.test(numa)) this.warn('malformed-attribute', `numa_node of ${addr} is ${JSON.stringify(numa)}, not a number; treated as unknown (-1)`, this.port.display('sys', `bus/pci/devices/${addr}/numa_node`));
    return {
      address: addr,
      iommuGroup,
      numaNode: numa !== undefined && /^-?[0-9]+$/.test(numa) ? Number(numa) : -1,
      driver: this.link(addr, 'driver') ?? null,
      vfioDev: this.safe(() => this.port.readVfioDev(addr)) ?? null,
    };
  }

  private attr(addr: PciAddress, name: Parameters<SysfsPort['readPciAttr']>[1]): string | undefined {
    return this.safe(() => this.port.readPciAttr(addr, name));
  }

  /** A `0x....` attribute as lower-case hex without the prefix, padded; warns when malformed. */
  private hexAttr(addr: PciAddress, name: 'vendor' | 'device' | 'subsystem_vendor' | 'subsystem_device' | 'class' | 'revision', digits: number): string | undefined {
    const v = this.attr(addr, name);
    if (v === undefined) return undefined;
    const m = /^0x([0-9a-fA-F]{1,8})$/.exec(v);
    if (!m) {
      this.warn('malformed-attribute', `${name} of ${addr} is ${JSON.stringify(v.slice(0, 40))}, expected a 0x-prefixed hex number`, this.port.display('sys', `bus/pci/devices/${addr}/${name}`));
      return undefined;
    }
    return m[1]!.toLowerCase().padStart(digits, '0').slice(-digits);
  }

  private decimalAttr(addr: PciAddress, name: 'sriov_totalvfs' | 'sriov_numvfs' | 'sriov_offset' | 'sriov_stride'): number | undefined {
    const v = this.attr(addr, name);
    if (v === undefined) return undefined;
    if (!/^[0-9]{1,6}$/.test(v)) {
      this.warn('malformed-attribute', `${name} of ${addr} is ${JSON.stringify(v.slice(0, 40))}, not a number`, this.port.display('sys', `bus/pci/devices/${addr}/${name}`));
      return undefined;
    }
    return Number(v);
  }

  private decimalNvidia(addr: PciAddress, name: 'current_vgpu_type', text: string | undefined, warnings: Warning[]): number | undefined {
    const v = text?.trim();
    if (v === undefined) return undefined;
    if (!/^[0-9]{1,10}$/.test(v)) {
      warnings.push({ code: 'malformed-attribute', message: `${name} of ${addr} is ${JSON.stringify(v.slice(0, 40))}, not a type ID`, path: this.port.display('sys', `bus/pci/devices/${addr}/nvidia/${name}`) });
      return undefined;
    }
    return Number(v);
  }

  private link(addr: PciAddress, name: 'driver' | 'iommu_group' | 'physfn'): string | undefined {
    const v = this.safe(() => this.port.readPciLink(addr, name));
    // Cheap consistency checks first: a driver link names a registered driver, a physfn link a
    // listed device. Only a link that fails them costs the stat that tells whether it dangles.
    // (iommu_group is checked by readFunction against the group's member list.)
    if (v !== undefined && name !== 'iommu_group' && !(name === 'driver' ? this.drivers : this.devices).has(v)) this.checkDangling(addr, name);
    return v;
  }

  private checkDangling(addr: PciAddress, name: 'driver' | 'iommu_group' | 'physfn'): void {
    if (this.port.isDanglingLink(addr, name)) {
      this.warn('dangling-link', `${name} link of ${addr} points to something that does not exist`, this.port.display('sys', `bus/pci/devices/${addr}/${name}`));
    }
  }

  /** Run a read; a SysfsError becomes a warning and undefined. */
  private safe<T>(f: () => T, into?: Warning[]): T | undefined {
    try {
      return f();
    } catch (err) {
      if (err instanceof SysfsError) {
        const w = { code: `read-${err.code.toLowerCase()}`, message: `cannot ${err.op} ${err.path}: ${err.code}${err.detail ? ` (${err.detail})` : ''}`, path: err.path };
        if (into) into.push(w);
        else this.warnings.push(w);
        return undefined;
      }
      throw err;
    }
  }

  private warn(code: string, message: string, path?: string): void {
    this.warnings.push(path ? { code, message, path } : { code, message });
  }
}

/**
 * The parts of an inventory that need NVIDIA's tools: MIG state and NVLink
 * islands, mixed-size mode per GPU, and type names for configured VFs that no free VF lists and the cache
 * does not know (from `nvidia-smi vgpu -s`); with `fullCatalog`, every type
 * the GPU supports even when all are named. Changes the inventory in place.
 */
export async function enrichWithHostTools(inv: Inventory, tools: HostTools, opts: { mixedSizeMode?: boolean; fullCatalog?: boolean } = {}): Promise<void> {
  for (const g of inv.gpus) if (g.framework === 'sriov-vgpu' || g.framework === 'mdev-vgpu' || g.framework === 'host-driver') g.mig = await readMigState(g, tools);
  await readNvlinkIslands(inv, tools);
  for (const g of inv.gpus) {
    if (g.framework !== 'sriov-vgpu') continue;
    const pf = checkPciAddress(g.pci.address);
    if (opts.mixedSizeMode ?? true) {
      try {
        g.heterogeneousMode = (await tools.heterogeneousMode(pf)) ?? null;
      } catch {
        g.heterogeneousMode = null;
      }
    }
    const unknown = g.vfs.filter((v) => v.currentTypeId && !v.currentProfile);
    if (unknown.length === 0 && g.catalog.length > 0 && !opts.fullCatalog) continue;
    let out: string | undefined;
    try {
      out = await tools.nvidiaSmiSupportedTypes(pf);
    } catch {
      out = undefined;
    }
    if (!out) continue;
    for (const e of parseNvidiaSmiSupportedTypes(out)) {
      const have = g.catalog.findIndex((t) => t.id === e.id);
      // The driver's own tool outranks a remembered name; a free VF's list stays the first source.
      if (have < 0) g.catalog.push(toVgpuType(e, 'nvidia-smi'));
      else if (g.catalog[have]!.source === 'cache') g.catalog[have] = toVgpuType(e, 'nvidia-smi');
    }
    g.catalog.sort((a, b) => a.id - b.id);
    for (const v of g.vfs) {
      if (v.currentTypeId && !v.currentProfile) v.currentProfile = g.catalog.find((t) => t.id === v.currentTypeId)?.profile ?? null;
    }
    if (!g.vfs.some((v) => v.currentTypeId && !v.currentProfile)) g.warnings = g.warnings.filter((w) => w.code !== 'unknown-type-id');
  }
}

