/**
 * From the inventory to the resources the kubelet sees: which devices exist,
 * under which resource name, with what the health check must expect of them.
 * Pure: no I/O, so the grouping and naming rules are unit-tested on plain data.
 */
import type { Gpu, Inventory, PciFunction, VgpuVf } from '../../inventory/types.js';
import { profileNameOf } from '../../model/profile.js';
import {
  DEFAULT_RESOURCE_DOMAIN,
  mdevResourceName,
  resourceNameProblem,
  sriovResourceName,
  type ResourceKind,
} from './naming.js';

/** Where a resource's devices come from. */
export type ResourceSource = 'sriov-vgpu' | 'mdev-vgpu' | 'passthrough';

/** One device advertised to the kubelet. */
export interface DeviceEntry {
  /** The kubelet's device ID: a PCI address (`0000:3b:00.4`) or an mdev UUID. */
  id: string;
  source: ResourceSource;
  /** The PCI function handed to the VM (VF or passthrough GPU); null for an mdev. */
  address: string | null;
  /** The mdev UUID; null for a PCI function. */
  uuid: string | null;
  /** The physical GPU (PF) the device lives on. */
  gpu: string;
  /** For an mdev: its parent (the PF, or a VF on Ampere SR-IOV cards). */
  parent: string | null;
  iommuGroup: number | null;
  /** `vfioN` from `<bdf>/vfio-dev/`, when the function has one. */
  vfioDev: string | null;
  /** -1 = unknown (no topology is sent). */
  numaNode: number;
  /** The vGPU profile (`L40S-24Q`, `T4-1Q`); null for passthrough or when unknown. */
  profile: string | null;
  /** The NVLink island of the device's GPU (its lowest PF address); null when unknown or not NVLink-joined. */
  nvlinkIsland: string | null;
  /** What the health check expects: a VF's vGPU type ID, an mdev's type directory, a passthrough GPU's driver. */
  expect: { vgpuTypeId?: number; mdevTypeDir?: string; driver?: string };
}

export interface ResourceSpec {
  resourceName: string;
  kind: ResourceKind;
  source: ResourceSource;
  /**
   * KubeVirt selectors for permittedHostDevices: `VVVV:DDDD` (upper-case hex)
   * for PCI resources, mdev type names (`GRID T4-1Q`) for mdev resources. Sorted.
   */
  selectors: string[];
  /** Sorted by ID. */
  devices: DeviceEntry[];
  /** The host driver version (`/sys/module/nvidia/version`): NVIDIA's multi-vGPU rules depend on it. */
  driverVersion: string | null;
}

export interface ResourceProblem {
  code: 'unnamed-vgpu-type' | 'no-iommu-group' | 'invalid-resource-name' | 'resource-kind-conflict' | 'unnamed-mdev-type';
  message: string;
  device?: string;
}

export interface ResourceNaming {
  /**
   * Overrides: key -> resource name. Keys (matched case-insensitively):
   * a vGPU profile (`L40S-24Q`) or full type name (`NVIDIA L40S-24Q`); an mdev
   * type name (`GRID T4-1Q`) or its profile (`T4-1Q`); for passthrough the
   * `vendor:device` ID (`10de:2236`) or the model name; or a default resource
   * name (`nvidia.com/GA102GL_A10`).
   */
  resourceNames?: Record<string, string>;
  /** Domain of default names (default `nvidia.com`). */
  domain?: string;
  /** Default name of a passthrough GPU's resource (PCI IDs database name). */
  passthroughName: (gpu: Gpu, domain: string) => string;
}

/** Validate every override value up front; throws one error naming all bad entries. */
export function validateResourceNames(map: Record<string, string> | undefined, where = 'resourceNames'): void {
  if (!map) return;
  const bad: string[] = [];
  for (const [key, value] of Object.entries(map)) {
    const problem = typeof value === 'string' ? resourceNameProblem(value) : 'it is not a string';
    if (problem) bad.push(`${where}[${JSON.stringify(key)}] = ${JSON.stringify(value)}: ${problem}`);
  }
  if (bad.length) throw new Error(`invalid resource name override${bad.length > 1 ? 's' : ''}:\n  ${bad.join('\n  ')}`);
}

function overrideLookup(map: Record<string, string> | undefined): (keys: (string | null | undefined)[]) => string | undefined {
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(map ?? {})) if (!lower.has(k.toLowerCase())) lower.set(k.toLowerCase(), v);
  return (keys) => {
    for (const k of keys) {
      if (k === null || k === undefined) continue;
      const hit = lower.get(k.toLowerCase());
      if (hit !== undefined) return hit;
    }
    return undefined;
  };
}

export function pciSelector(vendorId: string, deviceId: string): string {
  const clean = (h: string) => h.replace(/^0x/i, '').padStart(4, '0').toUpperCase();
  return `${clean(vendorId)}:${clean(deviceId)}`;
}

function vfProfile(gpu: Gpu, vf: VgpuVf): { profile: string; typeName: string | null } | null {
  const t = gpu.catalog.find((c) => c.id === vf.currentTypeId);
  if (vf.currentProfile) return { profile: vf.currentProfile, typeName: t?.name ?? null };
  if (t) return { profile: t.profile, typeName: t.name };
  return null;
}

/** One device on offer under a resource name, before it joins the table. */
interface Offer {
  resourceName: string;
  kind: ResourceKind;
  source: ResourceSource;
  /** KubeVirt's selector for the device: `VVVV:DDDD`, or the mdev type name. */
  selector: string;
  device: DeviceEntry;
}

/** What a provider yields for each device, in order: an offer, or why the device is left out. */
type Found = { offer: Offer } | { problem: ResourceProblem };

/** How a provider names resources: the override lookup and the default domain. */
interface Namer {
  domain: string;
  lookup: (keys: (string | null | undefined)[]) => string | undefined;
  passthroughName: ResourceNaming['passthroughName'];
}

/**
 * Group the node's devices into resources. Order is deterministic (GPUs by
 * address; on each GPU its SR-IOV VFs, mdevs, then the GPU itself); when two
 * groups want one name with different kinds (PCI vs mdev), the first keeps it
 * and the other is reported and left out.
 */
export function collectResources(inv: Inventory, naming: ResourceNaming): { resources: ResourceSpec[]; problems: ResourceProblem[] } {
  const namer: Namer = { domain: naming.domain ?? DEFAULT_RESOURCE_DOMAIN, lookup: overrideLookup(naming.resourceNames), passthroughName: naming.passthroughName };
  const functions = new Map(inv.otherFunctions.map((f) => [f.address, f]));
  const table = new ResourceTable(inv.node.nvidiaDriverVersion);
  const gpus = [...inv.gpus].sort((a, b) => a.pci.address.localeCompare(b.pci.address));
  for (const gpu of gpus) {
    for (const found of [...sriovDevices(gpu, namer, functions), ...mdevDevices(gpu, namer), ...passthroughDevices(gpu, namer)]) {
      if ('problem' in found) table.problems.push(found.problem);
      else table.add(found.offer);
    }
  }
  return table.result();
}

/** Resources by name, and the problems met on the way. */
class ResourceTable {
  readonly problems: ResourceProblem[] = [];
  private readonly byName = new Map<string, ResourceSpec>();

  constructor(private readonly driverVersion: string | null) {}

  add({ resourceName, kind, source, selector, device }: Offer): void {
    const problem = resourceNameProblem(resourceName);
    if (problem) {
      this.problems.push({ code: 'invalid-resource-name', device: device.id, message: `device ${device.id}: resource name ${JSON.stringify(resourceName)} is invalid (${problem}); set a valid name in resourceNames` });
      return;
    }
    let spec = this.byName.get(resourceName);
    if (!spec) {
      spec = { resourceName, kind, source, selectors: [], devices: [], driverVersion: this.driverVersion };
      this.byName.set(resourceName, spec);
    } else if (spec.kind !== kind) {
      this.problems.push({
        code: 'resource-kind-conflict',
        device: device.id,
        message: `device ${device.id} (${source}) maps to ${resourceName}, which already holds ${spec.kind === 'mdev' ? 'mdev' : 'PCI'} devices (${spec.source}); one resource cannot mix PCI functions and mdevs. Give one of them another name in resourceNames`,
      });
      return;
    }
    if (!spec.selectors.includes(selector)) spec.selectors.push(selector);
    spec.devices.push(device);
  }

  /** Resources sorted by name, each with sorted selectors and devices. */
  result(): { resources: ResourceSpec[]; problems: ResourceProblem[] } {
    const resources = [...this.byName.values()].sort((a, b) => a.resourceName.localeCompare(b.resourceName));
    for (const r of resources) {
      r.selectors.sort();
      r.devices.sort((a, b) => a.id.localeCompare(b.id));
    }
    return { resources, problems: this.problems };
  }
}

/** SR-IOV vGPU: each VF with a vGPU type, named by its profile. */
function* sriovDevices(gpu: Gpu, namer: Namer, functions: ReadonlyMap<string, PciFunction>): Generator<Found> {
  if (gpu.framework !== 'sriov-vgpu') return;
  for (const vf of gpu.vfs) {
    if (vf.currentTypeId === 0) continue;
    const p = vfProfile(gpu, vf);
    if (!p) {
      yield { problem: { code: 'unnamed-vgpu-type', device: vf.address, message: `VF ${vf.address} of GPU ${gpu.pci.address} has vGPU type ${vf.currentTypeId}, which the type catalog does not name; it is not advertised. Re-read the inventory while a VF is free so the catalog learns the name` } };
      continue;
    }
    if (vf.iommuGroup === null) {
      yield { problem: { code: 'no-iommu-group', device: vf.address, message: `VF ${vf.address} has no IOMMU group, so no VM can use it; it is not advertised. Enable the IOMMU (intel_iommu=on or amd_iommu=on)` } };
      continue;
    }
    const def = sriovResourceName(p.profile, namer.domain);
    const fn = functions.get(vf.address);
    const device: DeviceEntry = {
      id: vf.address,
      source: 'sriov-vgpu',
      address: vf.address,
      uuid: null,
      gpu: gpu.pci.address,
      parent: null,
      iommuGroup: vf.iommuGroup,
      vfioDev: vf.vfioDev,
      numaNode: vf.numaNode >= 0 ? vf.numaNode : gpu.pci.numaNode,
      profile: p.profile,
      nvlinkIsland: gpu.nvlinkIsland ?? null,
      expect: { vgpuTypeId: vf.currentTypeId },
    };
    const selector = fn ? pciSelector(fn.vendorId, fn.deviceId) : pciSelector(gpu.pci.vendorId, gpu.pci.deviceId);
    yield { offer: { resourceName: namer.lookup([p.profile, p.typeName, def]) ?? def, kind: 'pci', source: 'sriov-vgpu', selector, device } };
  }
}

/** mdev vGPU: every mdev instance, whatever the GPU's framework says (an existing mdev is a device), named by its type. */
function* mdevDevices(gpu: Gpu, namer: Namer): Generator<Found> {
  for (const parent of gpu.mdevParents) {
    const parentVf = gpu.vfs.find((v) => v.address === parent.address);
    for (const inst of parent.instances) {
      const type = parent.types.find((t) => t.dir === inst.typeDir);
      const typeName = inst.typeName ?? type?.name ?? null;
      if (!typeName) {
        yield { problem: { code: 'unnamed-mdev-type', device: inst.uuid, message: `mdev ${inst.uuid} on ${parent.address} has type ${inst.typeDir} without a name; it is not advertised` } };
        continue;
      }
      const def = mdevResourceName(typeName, namer.domain);
      const device: DeviceEntry = {
        id: inst.uuid,
        source: 'mdev-vgpu',
        address: null,
        uuid: inst.uuid,
        gpu: gpu.pci.address,
        parent: parent.address,
        iommuGroup: inst.iommuGroup,
        vfioDev: null,
        numaNode: parentVf && parentVf.numaNode >= 0 ? parentVf.numaNode : gpu.pci.numaNode,
        profile: type?.profile ?? profileNameOf(typeName) ?? null,
        nvlinkIsland: gpu.nvlinkIsland ?? null,
        expect: { mdevTypeDir: inst.typeDir },
      };
      yield { offer: { resourceName: namer.lookup([typeName, type?.profile, def]) ?? def, kind: 'mdev', source: 'mdev-vgpu', selector: typeName, device } };
    }
  }
}

/** Passthrough: the whole GPU on vfio-pci (or a vendor VFIO variant), named by its model. */
function* passthroughDevices(gpu: Gpu, namer: Namer): Generator<Found> {
  if (gpu.framework !== 'passthrough') return;
  if (gpu.pci.iommuGroup === null) {
    yield { problem: { code: 'no-iommu-group', device: gpu.pci.address, message: `GPU ${gpu.pci.address} is bound for passthrough but has no IOMMU group; it is not advertised. Enable the IOMMU` } };
    return;
  }
  const def = namer.passthroughName(gpu, namer.domain);
  const ids = `${gpu.pci.vendorId}:${gpu.pci.deviceId}`.replace(/0x/gi, '');
  const device: DeviceEntry = {
    id: gpu.pci.address,
    source: 'passthrough',
    address: gpu.pci.address,
    uuid: null,
    gpu: gpu.pci.address,
    parent: null,
    iommuGroup: gpu.pci.iommuGroup,
    vfioDev: gpu.pci.vfioDev,
    numaNode: gpu.pci.numaNode,
    profile: null,
    nvlinkIsland: gpu.nvlinkIsland ?? null,
    expect: gpu.pci.driver ? { driver: gpu.pci.driver } : {},
  };
  yield { offer: { resourceName: namer.lookup([ids, gpu.model.name, def]) ?? def, kind: 'pci', source: 'passthrough', selector: pciSelector(gpu.pci.vendorId, gpu.pci.deviceId), device } };
}
