/**
 * The simulated node's state, as plain data: the spec it is made from, and the
 * PCI functions, VFs, mdevs and GPUs the simulated driver keeps (kernel.ts
 * changes them, tree.ts renders them, snapshot.ts saves them).
 */
import type { SimModel, SimType } from './hardware.js';
import type { SimMig } from './mig.js';

export type SimMode = 'sriov-vgpu' | 'mdev-vgpu' | 'passthrough' | 'host';

export interface SimGpuSpec {
  /** Model key, e.g. `L40S` (see `vmgpu sim models`). */
  model: string;
  count?: number;
  mode: SimMode;
  /** SR-IOV vGPU: enable VFs at boot (default true for mode sriov-vgpu). */
  vfsEnabled?: boolean;
  /** Profiles to configure at creation: VFs in order (SR-IOV) or mdev instances (mdev). */
  profiles?: string[];
  /** Mixed-size ("heterogeneous") mode at creation. */
  heterogeneous?: boolean;
  numaNode?: number;
  /** Give the GPU an audio function in its IOMMU group (default: per model). */
  audio?: boolean;
}

export interface SimNodeSpec {
  gpus: SimGpuSpec[];
  /** NVIDIA driver version (`/sys/module/nvidia/version`); type IDs and quirks depend on it. */
  driverVersion?: string;
  /** Whether the NVIDIA driver is the vGPU manager (host) driver. Default: true if any GPU is in a vGPU mode. */
  vgpuHostDriver?: boolean;
  iommu?: boolean;
  kernelRelease?: string;
  /** NVIDIA's sriov-manage installed under the host root (default true on a vGPU host). */
  sriovManage?: boolean;
  /** Models whose functions a vendor VFIO variant driver claims (modules.alias), e.g. ['H100']. */
  vfioVariantFor?: string[];
  /** The next N writes to sriov_numvfs fail with EBUSY "Cannot obtain unbindLock". */
  transientUnbindLockFailures?: number;
  /** iommufd enabled (`/dev/iommu`). Default true when the IOMMU is on. */
  iommufd?: boolean;
  /**
   * NVIDIA's nvidia-smi (and NVML) reachable by vmgpu (default true). False
   * models a container without the host driver's tools: type IDs on a full
   * card cannot be named from it, and mixed-size mode can be neither read nor set.
   */
  nvidiaSmi?: boolean;
  /**
   * GPUs joined by NVLink: groups of GPU indices (the node's GPUs in PCI
   * address order), every pair in a group linked (as through an NVSwitch).
   * Only `nvidia-smi topo -m` shows it; absent: no NVLink.
   */
  nvlink?: number[][];
}

export interface WriteRecord {
  path: string;
  data: string;
  error: string | null;
}

export interface SimFn {
  addr: string;
  bus: string;
  deviceId: string;
  subsystemDeviceId: string;
  classCode: string;
  revision: string;
  driver: string | null;
  override: string | null;
  group: number | null;
  numa: number;
  kind: 'pf' | 'vf' | 'audio';
  gpu: SimGpu;
  vfio: number | null;
}

export interface SimVf {
  fn: SimFn;
  index: number;
  typeId: number;
  params: string;
  /** The GPU instance its MIG-backed vGPU sits on. */
  gi: number | null;
}

export interface SimMdev {
  uuid: string;
  gpu: SimGpu;
  /** The PF, or on Ampere the VF that hosts it. */
  parent: SimFn;
  type: SimType;
  group: number;
  params: string;
  /** The GPU instance a MIG-backed vGPU sits on. */
  gi: number | null;
}

export interface SimGpu {
  model: SimModel;
  /** Ampere: mdev types live on the VFs. */
  mdevOnVfs: boolean;
  pf: SimFn;
  audio: SimFn | null;
  types: SimType[];
  framebufferMiB: number;
  vfs: SimVf[];
  heterogeneous: boolean;
  present: boolean;
  mdevs: Map<string, SimMdev>;
  /** MIG mode and GPU instances; null on a board without MIG-backed profiles. */
  mig: SimMig | null;
}
