/**
 * KubeVirt's permittedHostDevices for the DRA driver's extended resources.
 * A VM that asks `gpus[].deviceName: nvidia.com/L40S-12Q` is admitted only
 * when the KubeVirt CR permits that name; on a DRA GPU the name is served by
 * the DeviceClass whose extendedResourceName it is (the chart makes one per
 * profile, nvidia.com/<profile>), so the entries are those of the static
 * plugins for the same profiles: SR-IOV VFs under pciHostDevices (an SR-IOV
 * VF reports its PF's vendor:device), mdev types under mediatedDevices by
 * type name, all `externalResourceProvider: true`. The agent adds them to its
 * vmgpu.io/permitted-host-devices annotation, which `vmgpu kubevirt sync` merges.
 */
import type { Inventory } from '../../inventory/types.js';
import { pciSelector } from '../deviceplugin/resources.js';
import { sriovResourceName } from '../deviceplugin/naming.js';
import type { PermittedHostDevices } from '../kubevirt/permitted.js';
import type { Pool } from './devices.js';

export function draPermitted(pool: Pool, inv: Inventory): PermittedHostDevices {
  const pci = new Map<string, PermittedHostDevices['pciHostDevices'][number]>();
  const mdev = new Map<string, PermittedHostDevices['mediatedDevices'][number]>();
  for (const info of pool.info.values()) {
    if (info.profile === null) continue;
    const g = inv.gpus.find((x) => x.pci.address === info.gpu);
    if (!g) continue;
    const resourceName = sriovResourceName(info.profile);
    if (g.model.vgpuFramework === 'sriov') {
      const pciVendorSelector = pciSelector(g.pci.vendorId, g.pci.deviceId);
      pci.set(`${resourceName} ${pciVendorSelector}`, { pciVendorSelector, resourceName, externalResourceProvider: true });
      continue;
    }
    const typeName = g.catalog.find((t) => t.profile === info.profile)?.name ?? g.mdevParents.flatMap((p) => p.types).find((t) => t.profile === info.profile)?.name;
    if (typeName) mdev.set(`${resourceName} ${typeName}`, { mdevNameSelector: typeName, resourceName, externalResourceProvider: true });
  }
  const byName = <T extends { resourceName: string }>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
  return { pciHostDevices: byName(pci), mediatedDevices: byName(mdev) };
}

/** The agent's annotation value with the DRA entries merged in (entries already there are kept once). */
export function withDraPermitted(annotation: string | null, dra: PermittedHostDevices): string | null {
  if (dra.pciHostDevices.length === 0 && dra.mediatedDevices.length === 0) return annotation;
  const base = annotation ? (JSON.parse(annotation) as PermittedHostDevices) : { pciHostDevices: [], mediatedDevices: [] };
  const key = (e: object) => JSON.stringify(e);
  const pci = new Map([...base.pciHostDevices, ...dra.pciHostDevices].map((e) => [key(e), e]));
  const mdev = new Map([...base.mediatedDevices, ...dra.mediatedDevices].map((e) => [key(e), e]));
  return JSON.stringify({ pciHostDevices: [...pci.values()], mediatedDevices: [...mdev.values()] });
}
