/**
 * `permittedHostDevices` entries for the resources this node's device plugins
 * serve (CONTRACTS §5), ready to merge into the KubeVirt CR:
 * SR-IOV vGPU VFs and passthrough GPUs under pciHostDevices (selector
 * `VVVV:DDDD`), mdev types under mediatedDevices (selector = the type name, so
 * virt-handler leaves those mdevs alone). Every entry says
 * `externalResourceProvider: true`: vmgpu serves the resource, not virt-handler.
 *
 * Several profiles of one card share one pciVendorSelector; that is expected —
 * one entry per resource name.
 */
import type { Gpu, Inventory } from '../../inventory/types.js';
import type { PciIds } from '../../inventory/pciids.js';
import { passthroughNamer, defaultPassthroughName } from '../deviceplugin/passthrough-name.js';
import { collectResources, validateResourceNames, type ResourceProblem } from '../deviceplugin/resources.js';

export interface PciHostDevice {
  pciVendorSelector: string;
  resourceName: string;
  externalResourceProvider: boolean;
}

export interface MediatedHostDevice {
  mdevNameSelector: string;
  resourceName: string;
  externalResourceProvider: boolean;
}

export interface PermittedHostDevices {
  pciHostDevices: PciHostDevice[];
  mediatedDevices: MediatedHostDevice[];
}

export interface PermittedConfig {
  /** The same overrides the device plugins use (keys: profile, type name, vendor:device, default name). */
  resourceNames?: Record<string, string>;
  domain?: string;
  /** PCI IDs database for passthrough names (default: the first of the usual paths). */
  pciIds?: PciIds;
  passthroughName?: (gpu: Gpu, domain: string) => string;
}

/** The entries for this node, sorted by resource name then selector; `problems` lists devices left out and why. */
export function permittedHostDevicesWithProblems(inventory: Inventory, config: PermittedConfig = {}): PermittedHostDevices & { problems: ResourceProblem[] } {
  validateResourceNames(config.resourceNames);
  const { resources, problems } = collectResources(inventory, {
    resourceNames: config.resourceNames,
    domain: config.domain,
    passthroughName: config.passthroughName ?? (config.pciIds ? passthroughNamer(config.pciIds) : defaultPassthroughName),
  });
  const pciHostDevices: PciHostDevice[] = [];
  const mediatedDevices: MediatedHostDevice[] = [];
  for (const r of resources) {
    for (const selector of r.selectors) {
      if (r.kind === 'mdev') mediatedDevices.push({ mdevNameSelector: selector, resourceName: r.resourceName, externalResourceProvider: true });
      else pciHostDevices.push({ pciVendorSelector: selector, resourceName: r.resourceName, externalResourceProvider: true });
    }
  }
  pciHostDevices.sort((a, b) => a.resourceName.localeCompare(b.resourceName) || a.pciVendorSelector.localeCompare(b.pciVendorSelector));
  mediatedDevices.sort((a, b) => a.resourceName.localeCompare(b.resourceName) || a.mdevNameSelector.localeCompare(b.mdevNameSelector));
  return { pciHostDevices, mediatedDevices, problems };
}

/** `vmgpu kubevirt permitted-host-devices`: the entries for this node's resources. */
export function permittedHostDevices(inventory: Inventory, config: PermittedConfig = {}): PermittedHostDevices {
  const { pciHostDevices, mediatedDevices } = permittedHostDevicesWithProblems(inventory, config);
  return { pciHostDevices, mediatedDevices };
}

export interface MergeConflict {
  resourceName: string;
  message: string;
}

/**
 * Merge our entries into an existing `permittedHostDevices` without touching
 * the user's entries: an entry with the same selector and resource name is
 * kept as it is; ours are appended. An existing entry for one of our resource
 * names without `externalResourceProvider: true` is reported (virt-handler
 * would start a second plugin for that name) and left unchanged.
 */
export function mergePermittedHostDevices(
  existing: Partial<PermittedHostDevices> | undefined,
  ours: PermittedHostDevices,
): { merged: PermittedHostDevices; added: number; conflicts: MergeConflict[] } {
  const pci = [...(existing?.pciHostDevices ?? [])];
  const mdev = [...(existing?.mediatedDevices ?? [])];
  const conflicts: MergeConflict[] = [];
  let added = 0;
  const conflict = (name: string, what: string) => {
    if (!conflicts.some((c) => c.resourceName === name)) {
      conflicts.push({
        resourceName: name,
        message: `the KubeVirt CR already lists ${what} for ${name} without externalResourceProvider: true, so virt-handler serves that name itself; set externalResourceProvider: true on it (vmgpu serves ${name})`,
      });
    }
  };
  for (const e of ours.pciHostDevices) {
    const same = pci.filter((x) => x.resourceName === e.resourceName);
    for (const x of same) if (x.externalResourceProvider !== true) conflict(e.resourceName, `pciHostDevices selector ${x.pciVendorSelector}`);
    if (!same.some((x) => x.pciVendorSelector.toUpperCase() === e.pciVendorSelector)) {
      pci.push(e);
      added++;
    }
  }
  for (const e of ours.mediatedDevices) {
    const same = mdev.filter((x) => x.resourceName === e.resourceName);
    for (const x of same) if (x.externalResourceProvider !== true) conflict(e.resourceName, `mediatedDevices selector ${JSON.stringify(x.mdevNameSelector)}`);
    if (!same.some((x) => x.mdevNameSelector === e.mdevNameSelector)) {
      mdev.push(e);
      added++;
    }
  }
  return { merged: { pciHostDevices: pci, mediatedDevices: mdev }, added, conflicts };
}
