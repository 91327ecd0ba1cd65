/**
 * What a prepared claim hands the container runtime: a CDI spec (device
 * nodes per device; per request the KubeVirt env var, for extended-resource
 * claims, and the metadata bind mount) and the KEP-5304 metadata files, built
 * from the claim's record and the node as it is after Prepare.
 */
import type { Gpu, Inventory } from '../../inventory/types.js';
import { resourceEnvVar } from '../deviceplugin/naming.js';
import { cdiId, cdiName, vfioNodes, type CdiDevice } from './cdi.js';
import type { ClaimRecord, PreparedDevice } from './checkpoint.js';
import { baseRequest } from './claim.js';
import type { Attribute } from './devices.js';
import { MDEV_UUID_ATTRIBUTE, type ClaimRef, type MetadataDevice, type MetadataWriter } from './metadata.js';
import { ATTR_NUMA_NODE, ATTR_PCI_BUS_ID, ATTR_PCIE_ROOT } from './names.js';

export interface OutputOptions {
  iommufd: (device: PreparedDevice) => boolean;
  /** The extended resource a request stands for (extended-resource claims), for KubeVirt's env var; null for none. */
  extendedResource: (request: string) => string | null;
  podClaimName: string | null;
  pcieRoot: (gpu: string) => string | null;
}

/** The VFIO view of a device's target: its IOMMU group and cdev, and what the VM is given (address or UUID). */
function vfioOf(inv: Inventory, d: PreparedDevice): { gpu: Gpu; iommuGroup: number | null; vfioDev: string | null; id: string } {
  const gpu = inv.gpus.find((g) => g.pci.address === d.gpu);
  if (!gpu) throw new Error(`GPU ${d.gpu} vanished after Prepare`);
  const t = d.target;
  if (t.kind === 'whole') return { gpu, iommuGroup: gpu.pci.iommuGroup, vfioDev: gpu.pci.vfioDev, id: t.address };
  if (t.kind === 'vf') {
    const vf = gpu.vfs.find((v) => v.address === t.address);
    return { gpu, iommuGroup: vf?.iommuGroup ?? null, vfioDev: vf?.vfioDev ?? null, id: t.address };
  }
  const inst = gpu.mdevParents.flatMap((p) => p.instances).find((i) => i.uuid === t.uuid);
  return { gpu, iommuGroup: inst?.iommuGroup ?? null, vfioDev: null, id: t.uuid };
}

function metadataAttributes(d: PreparedDevice, v: ReturnType<typeof vfioOf>, pcieRoot: string | null): Record<string, Attribute> {
  const a: Record<string, Attribute> = d.target.kind === 'mdev' ? { [MDEV_UUID_ATTRIBUTE]: { string: v.id } } : { [ATTR_PCI_BUS_ID]: { string: v.id } };
  a.gpu = { string: d.gpu };
  a.profile = { string: d.profile ?? 'passthrough' };
  if (pcieRoot) a[ATTR_PCIE_ROOT] = { string: pcieRoot };
  if (v.gpu.pci.numaNode >= 0) a[ATTR_NUMA_NODE] = { int: v.gpu.pci.numaNode };
  return a;
}

/**
 * Write the claim's metadata files and return its CDI devices and the CDI
 * IDs per device (in the record's device order).
 */
export function claimOutputs(inv: Inventory, rec: ClaimRecord, o: OutputOptions, metadata: MetadataWriter): { devices: CdiDevice[]; ids: string[][] } {
  const views = rec.devices.map((d) => vfioOf(inv, d));
  const devices: CdiDevice[] = [];
  const ids: string[][] = rec.devices.map((d, i) => {
    const name = cdiName(rec.uid, `${d.device}-${i}`);
    devices.push({ name, containerEdits: { deviceNodes: vfioNodes([views[i]!], o.iommufd(d)) } });
    return [cdiId(name)];
  });
  const ref: ClaimRef = { namespace: rec.namespace, name: rec.name, uid: rec.uid, podClaimName: o.podClaimName };
  const requests = [...new Set(rec.devices.flatMap((d) => d.requests.map(baseRequest)))];
  for (const request of requests) {
    const members = rec.devices.map((d, i) => ({ d, i })).filter(({ d }) => d.requests.some((r) => baseRequest(r) === request));
    const mdDevices: MetadataDevice[] = members.map(({ d, i }) => ({ pool: d.pool, name: d.device, attributes: metadataAttributes(d, views[i]!, o.pcieRoot(d.gpu)) }));
    const hostFile = metadata.write(ref, request, mdDevices);
    const edits: CdiDevice['containerEdits'] = { mounts: [{ hostPath: hostFile, containerPath: metadata.containerFile(ref, request), options: ['ro', 'bind'] }] };
    const resource = o.extendedResource(request);
    if (resource) {
      const kind = members.every(({ d }) => d.target.kind === 'mdev') ? 'mdev' : 'pci';
      edits.env = [`${resourceEnvVar(kind, resource)}=${members.map(({ i }) => views[i]!.id).join(',')}`];
    }
    const name = cdiName(rec.uid, `req-${request}`);
    devices.push({ name, containerEdits: edits });
    ids[members[0]!.i]!.push(cdiId(name));
  }
  return { devices, ids };
}
