/**
 * What a GPU is now and what it can be used for, from facts already read: its
 * framework (passthrough, SR-IOV vGPU, mdev vGPU, the host driver, or unusable
 * with the reason) and its capabilities for containers, passthrough and vGPU,
 * each with the reason when it is not usable. Pure: no reads.
 */
import type { Capabilities, Framework, Gpu, MdevParent, NodeInfo, PciFunction, VgpuVf } from './types.js';

const NVIDIA = '10de';

type Capability = { usable: boolean; reason: string | null };
const USABLE: Capability = { usable: true, reason: null };

export function frameworkOf(pci: PciFunction, vfs: readonly VgpuVf[], mdevParents: readonly MdevParent[]): { framework: Framework; reason: string | null } {
  if (pci.driver && /vfio/.test(pci.driver)) return { framework: 'passthrough', reason: null };
  if (vfs.length > 0) return { framework: 'sriov-vgpu', reason: null };
  if (mdevParents.length > 0) return { framework: 'mdev-vgpu', reason: null };
  if (pci.driver === 'nvidia' || pci.driver === 'nouveau') return { framework: 'host-driver', reason: null };
  if (pci.driver === null) {
    return { framework: 'unusable', reason: `no driver is bound to ${pci.address}; bind it to nvidia (host or vGPU) or vfio-pci (passthrough)` };
  }
  return { framework: 'unusable', reason: `bound to ${pci.driver}, which vmgpu does not manage; unbind it first` };
}

/** `fnOf` gives the other PCI functions the inventory read (IOMMU group members). */
export function capabilitiesOf(g: Gpu, node: NodeInfo, fnOf: (addr: string) => PciFunction | undefined): Capabilities {
  const pci = g.pci;
  const containers: Capability =
    pci.driver === 'nvidia' && !node.vgpuHostDriver
      ? USABLE
      : { usable: false, reason: pci.driver === 'nvidia' ? 'the NVIDIA driver is the vGPU manager, which does not run CUDA containers' : `bound to ${pci.driver ?? 'no driver'}, not the NVIDIA host driver` };
  return { containers, passthrough: passthroughOf(pci, node, fnOf), vgpu: vgpuOf(g, node) };
}

function passthroughOf(pci: PciFunction, node: NodeInfo, fnOf: (addr: string) => PciFunction | undefined): Capability {
  if (!node.iommuEnabled) {
    return { usable: false, reason: 'the IOMMU is off (/sys/class/iommu is empty): enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on' };
  }
  if (pci.iommuGroup === null) return { usable: false, reason: `${pci.address} has no IOMMU group` };
  const strangers = pci.iommuGroupMembers.filter((m) => {
    if (m === pci.address || pci.sriov?.vfs.includes(m)) return false; // its own VFs are not strangers
    const f = fnOf(m);
    return !f || f.vendorId !== NVIDIA || m.slice(0, 10) !== pci.address.slice(0, 10);
  });
  if (strangers.length === 0) return USABLE;
  return { usable: false, reason: `IOMMU group ${pci.iommuGroup} also holds ${strangers.join(', ')}; the whole group would have to go to the VM (fix the slot or enable ACS)` };
}

function vgpuOf(g: Gpu, node: NodeInfo): Capability {
  const pci = g.pci;
  if (g.model.vgpuFramework === 'none' || g.model.vgpuFramework === 'unknown') return { usable: false, reason: `${g.model.name} is not a vGPU-capable model vmgpu knows` };
  if (!node.vgpuHostDriver) return { usable: false, reason: 'no vGPU manager: the NVIDIA vGPU host driver (module nvidia_vgpu_vfio) is not loaded' };
  if (pci.driver !== 'nvidia') return { usable: false, reason: `bound to ${pci.driver ?? 'no driver'}; vGPU needs the NVIDIA vGPU manager driver` };
  if (g.model.vgpuFramework === 'sriov' && !pci.sriov) return { usable: false, reason: 'no SR-IOV capability is exposed (sriov_totalvfs is missing)' };
  if (g.model.vgpuFramework === 'sriov' && !node.iommuEnabled) return { usable: false, reason: 'SR-IOV vGPU VFs are VFIO devices and need the IOMMU on' };
  return USABLE;
}
