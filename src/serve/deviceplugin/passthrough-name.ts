/**
 * Default resource name of a passthrough GPU: the PCI IDs database name as
 * NVIDIA's KubeVirt plugin derives it (src/inventory/pciids.ts), with the
 * configured domain.
 */
import type { Gpu } from '../../inventory/types.js';
import { loadFirstPciIds, passthroughResourceName, type PciIds } from '../../inventory/pciids.js';

/** A namer bound to one database (loaded from the usual paths on first use when not given). */
export function passthroughNamer(ids?: PciIds): (gpu: Gpu, domain: string) => string {
  let db = ids;
  return (gpu, domain) => {
    db ??= loadFirstPciIds();
    const name = passthroughResourceName(db, gpu.pci.vendorId, gpu.pci.deviceId);
    const local = name.slice(name.indexOf('/') + 1);
    return `${domain}/${local}`;
  };
}

export const defaultPassthroughName = passthroughNamer();
