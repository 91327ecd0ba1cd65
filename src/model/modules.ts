/**
 * The kernel modules whose presence matters to vmgpu: the NVIDIA drivers (host, vGPU manager),
 * VFIO and its variants, mdev, iommufd and KVM. The inventory reports which are loaded, and a
 * capture keeps their sysfs entries.
 */
export const RELEVANT_MODULES = [
  'nvidia',
  'nvidia_vgpu_vfio',
  'nvidia_uvm',
  'nouveau',
  'vfio',
  'vfio_pci',
  'vfio_pci_core',
  'vfio_iommu_type1',
  'iommufd',
  'mdev',
  'kvm',
  'kvm_intel',
  'kvm_amd',
  'nvgrace_gpu_vfio_pci',
] as const;
