/**
 * From the inventory to the resources the kubelet sees: which devices exist,
 * under which resource name, with what the health check must expect of them.
 * Pure: no I/O, so the grouping and naming rules are unit-tested on plain data.
 */
import type { Gpu, Inventory, VgpuVf } from '../../inventory/types.js';
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

/**
 * Group the node's devices into resources. Order is deterministic (GPUs by
 * address); when two groups want one name with different kinds (PCI vs mdev),
 * the first keeps it and the other is reported and left out.
 */
export function collectResources(inv: Inventory, naming: ResourceNaming): { resources: ResourceSpec[]; problems: ResourceProblem[] } {
  const domain = naming.domain ?? DEFAULT_RESOURCE_DOMAIN;
  const lookup = overrideLookup(naming.resourceNames);
  const problems: ResourceProblem[] = [];
  const byName = new Map<string, ResourceSpec>();
  const functions = new Map(inv.otherFunctions.map((f) => [f.address, f]));

  const add = (resourceName: string, kind: ResourceKind, source: ResourceSource, selector: string, dev: DeviceEntry) => {
    const problem = resourceNameProblem(resourceName);
    if (problem) {
      problems.push({ code: 'invalid-resource-name', device: dev.id, message: `device ${dev.id}: resource name ${JSON.stringify(resourceName)} is invalid (${problem}); set a valid name in resourceNames` });
      return;
    }
    let spec = byName.get(resourceName);
    if (!spec) {
      spec = { resourceName, kind, source, selectors: [], devices: [] };
      byName.set(resourceName, spec);
    } else if (spec.kind !== kind) {
      problems.push({
        code: 'resource-kind-conflict',
        device: dev.id,
        message: `device ${dev.id} (${source}) maps to ${resourceName}, which already holds ${spec.kind === 'mdev' ? 'mdev' : 'PCI'} devices (${spec.source}); one resource cannot mix PCI functions and mdevs. Give one of them another name in resourceNames`,
      });
      return;
    }
    if (!spec.selectors.includes(selector)) spec.selectors.push(selector);
    spec.devices.push(dev);
  };

  const gpus = [...inv.gpus].sort((a, b) => a.pci.address.localeCompare(b.pci.address));
  for (const gpu of gpus) {
    // SR-IOV vGPU VFs with a type.
    if (gpu.framework === 'sriov-vgpu') {
      for (const vf of gpu.vfs) {
        if (vf.currentTypeId === 0) continue;
        const p = vfProfile(gpu, vf);
        if (!p) {
          problems.push({ code: 'unnamed-vgpu-type', device: vf.address, message: `VF ${vf.address} of GPU ${gpu.pci.address} has vGPU type ${vf.currentTypeId}, which the type catalog does not name; it is not advertised. Re-read the inventory while a VF is free so the catalog learns the name` });
          continue;
        }
        if (vf.iommuGroup === null) {
          problems.push({ code: 'no-iommu-group', device: vf.address, message: `VF ${vf.address} has no IOMMU group, so no VM can use it; it is not advertised. Enable the IOMMU (intel_iommu=on or amd_iommu=on)` });
          continue;
        }
        const def = sriovResourceName(p.profile, domain);
        const name = lookup([p.profile, p.typeName, def]) ?? def;
        const fn = functions.get(vf.address);
        const selector = fn ? pciSelector(fn.vendorId, fn.deviceId) : pciSelector(gpu.pci.vendorId, gpu.pci.deviceId);
        add(name, 'pci', 'sriov-vgpu', selector, {
          id: vf.address,
          source: 'sriov-vgpu',
          address: vf.address,
          uuid: null,
          gpu: gpu.pci.address,
          parent: null,
          iommuGroup: vf.iommuGroup,
          vfioDev: vf.vfioDev,
          numaNode: vf.numaNode >= 0 ? vf.numaNode : gpu.pci.numaNode,
          expect: { vgpuTypeId: vf.currentTypeId },
        });
      }
    }

    // mdev instances, whatever the GPU's framework says: an existing mdev is a device.
    for (const parent of gpu.mdevParents) {
      for (const inst of parent.instances) {
        const type = parent.types.find((t) => t.dir === inst.typeDir);
        const typeName = inst.typeName ?? type?.name ?? null;
        if (!typeName) {
          problems.push({ code: 'unnamed-mdev-type', device: inst.uuid, message: `mdev ${inst.uuid} on ${parent.address} has type ${inst.typeDir} without a name; it is not advertised` });
          continue;
        }
        const def = mdevResourceName(typeName, domain);
        const name = lookup([typeName, type?.profile, def]) ?? def;
        const parentVf = gpu.vfs.find((v) => v.address === parent.address);
        add(name, 'mdev', 'mdev-vgpu', typeName, {
          id: inst.uuid,
          source: 'mdev-vgpu',
          address: null,
          uuid: inst.uuid,
          gpu: gpu.pci.address,
          parent: parent.address,
          iommuGroup: inst.iommuGroup,
          vfioDev: null,
          numaNode: parentVf && parentVf.numaNode >= 0 ? parentVf.numaNode : gpu.pci.numaNode,
          expect: { mdevTypeDir: inst.typeDir },
        });
      }
    }

    // Whole GPUs on vfio-pci (or a vendor VFIO variant).
    if (gpu.framework === 'passthrough') {
      if (gpu.pci.iommuGroup === null) {
        problems.push({ code: 'no-iommu-group', device: gpu.pci.address, message: `GPU ${gpu.pci.address} is bound for passthrough but has no IOMMU group; it is not advertised. Enable the IOMMU` });
        continue;
      }
      const def = naming.passthroughName(gpu, domain);
      const ids = `${gpu.pci.vendorId}:${gpu.pci.deviceId}`.replace(/0x/gi, '');
      const name = lookup([ids, gpu.model.name, def]) ?? def;
      add(name, 'pci', 'passthrough', pciSelector(gpu.pci.vendorId, gpu.pci.deviceId), {
        id: gpu.pci.address,
        source: 'passthrough',
        address: gpu.pci.address,
        uuid: null,
        gpu: gpu.pci.address,
        parent: null,
        iommuGroup: gpu.pci.iommuGroup,
        vfioDev: gpu.pci.vfioDev,
        numaNode: gpu.pci.numaNode,
        expect: gpu.pci.driver ? { driver: gpu.pci.driver } : {},
      });
    }
  }

  const resources = [...byName.values()].sort((a, b) => a.resourceName.localeCompare(b.resourceName));
  for (const r of resources) {
    r.selectors.sort();
    r.devices.sort((a, b) => a.id.localeCompare(b.id));
  }
  return { resources, problems };
}
