/**
 * The inventory: a node's GPUs as plain data. Produced by readInventory()
 * from the sysfs port; consumed by the planner, the device plugins and
 * `vmgpu discover --json` (whose schema is docs/discover-json.md). Field
 * names here are that JSON's field names: change them only with a schema
 * version bump.
 */

export const INVENTORY_SCHEMA_VERSION = 1;

/** How a GPU is being used right now. */
export type Framework =
  /** VFs enabled under NVIDIA's vGPU manager (each VF has an `nvidia/` directory). */
  | 'sriov-vgpu'
  /** An mdev parent (`mdev_supported_types`), Pascal to Ampere. */
  | 'mdev-vgpu'
  /** Bound to vfio-pci or a vendor VFIO variant, whole-GPU passthrough. */
  | 'passthrough'
  /** Bound to a host driver (nvidia, nouveau): containers, or not yet configured for VMs. */
  | 'host-driver'
  /** Cannot be used as it is; `unusableReason` says why. */
  | 'unusable';

export interface SriovInfo {
  totalVfs: number;
  numVfs: number;
  offset: number | null;
  stride: number | null;
  /** VF addresses in virtfn order. */
  vfs: string[];
}

/** One PCI function, as the kernel shows it. */
export interface PciFunction {
  address: string;
  vendorId: string;
  deviceId: string;
  subsystemVendorId: string | null;
  subsystemDeviceId: string | null;
  /** Six hex digits, e.g. `030200`. */
  classCode: string;
  revision: string | null;
  /** Human name: PCI IDs database, else vmgpu's table of newer models, else `vendor:device`. */
  name: string;
  driver: string | null;
  /** null when the file reads `(null)` or is absent. */
  driverOverride: string | null;
  iommuGroup: number | null;
  /** Every function in the same IOMMU group (including this one). */
  iommuGroupMembers: string[];
  /** -1 = unknown, as the kernel reports it. */
  numaNode: number;
  sriov: SriovInfo | null;
  /** For a VF: its PF. */
  physfn: string | null;
  /** `vfioN` from `<dev>/vfio-dev/`. */
  vfioDev: string | null;
  resetMethods: string[];
  modalias: string | null;
}

export type VgpuSeries = 'Q' | 'B' | 'A' | 'C' | 'unknown';

/** One vGPU type (profile) a GPU offers. IDs are per card model and driver version. */
export interface VgpuType {
  id: number;
  /** Full name as the driver prints it, e.g. `NVIDIA L40S-12Q` or `GRID T4-1Q`. */
  name: string;
  /** Name without the `NVIDIA ` / `GRID ` prefix: `L40S-12Q`. */
  profile: string;
  series: VgpuSeries;
  /** Framebuffer in MiB, from the driver (mdev description) or NVIDIA's documentation. */
  framebufferMiB: number | null;
  /** Maximum instances per GPU, same sources. */
  maxInstances: number | null;
  /** MIG-backed (`A100-1-5C`, `H200X-1-18C`). */
  migBacked: boolean;
  /**
   * Where the ID→name mapping came from: this node's own sources (a free VF's
   * creatable list, the catalog cache, nvidia-smi, an mdev type directory), or
   * `cluster`: learned by the agent on another node with the same card and
   * driver version (src/machine/shared-names.ts).
   */
  source: 'creatable' | 'cache' | 'nvidia-smi' | 'mdev' | 'cluster';
}

/** An SR-IOV vGPU VF. */
export interface VgpuVf {
  address: string;
  /** Index of the `virtfnN` link on the PF. */
  index: number;
  /** 0 = no type. */
  currentTypeId: number;
  /** Profile name of the current type when the catalog knows it (`L40S-12Q`), else null. */
  currentProfile: string | null;
  /** IDs in this VF's `creatable_vgpu_types` right now. */
  creatableTypeIds: number[];
  vgpuParams: string | null;
  iommuGroup: number | null;
  vfioDev: string | null;
  numaNode: number;
  driver: string | null;
  /** The GPU instance a MIG-backed vGPU on this VF sits on (`nvidia/gpu_instance_id`); null: none, or not told. */
  gpuInstanceId: number | null;
}

export interface MdevTypeInfo {
  /** Directory name, e.g. `nvidia-256`. */
  dir: string;
  id: number;
  name: string;
  profile: string;
  description: string;
  availableInstances: number;
  deviceApi: string | null;
  framebufferMiB: number | null;
  maxInstances: number | null;
}

export interface MdevInstance {
  uuid: string;
  /** Type directory, e.g. `nvidia-256`. */
  typeDir: string;
  /** Type name, e.g. `GRID T4-1Q`. */
  typeName: string | null;
  parent: string;
  iommuGroup: number | null;
  vgpuParams: string | null;
  /** The GPU instance a MIG-backed vGPU sits on (`nvidia/gpu_instance_id`); null: none, or not told. */
  gpuInstanceId: number | null;
}

/** An mdev parent (the PF, or a VF on Ampere SR-IOV cards). */
export interface MdevParent {
  address: string;
  types: MdevTypeInfo[];
  instances: MdevInstance[];
}

export interface GpuModel {
  /** Marketing name, e.g. `L40S`, `H200 NVL`, `A100 80GB PCIe`; from vmgpu's table or the PCI IDs database. */
  name: string;
  /** Board prefix used in vGPU profile names (`L40S`, `H100`, `A100D`), when known. */
  profileBoard: string | null;
  /** The vGPU framework this model uses on a vGPU host driver. */
  vgpuFramework: 'sriov' | 'mdev' | 'none' | 'unknown';
}

export interface Warning {
  /** Stable machine-readable code, e.g. `dangling-link`, `malformed-attribute`. */
  code: string;
  message: string;
  /** The file the warning is about. */
  path?: string;
}

export interface Capability {
  usable: boolean;
  /** Why not (or a caveat), in words a user can act on; null when usable without caveat. */
  reason: string | null;
}

export interface Capabilities {
  /** CUDA containers through the host driver. */
  containers: Capability;
  /** Whole-GPU passthrough with vfio-pci (IOMMU on, IOMMU group isolated). */
  passthrough: Capability;
  /** vGPU (SR-IOV or mdev, per the model) under NVIDIA's vGPU manager driver. */
  vgpu: Capability;
}

/** One GPU instance, as `nvidia-smi mig -lgi` lists it. */
export interface GpuInstance {
  id: number;
  /** `1g.10gb`, `1g.24gb+gfx`. */
  profile: string;
  profileId: number | null;
  /** First memory slot and slots taken (`Placement Start:Size`). */
  start: number;
  size: number;
}

/** MIG state of a MIG-capable GPU, from NVIDIA's tools. */
export interface MigState {
  /** MIG mode in effect. */
  current: boolean;
  /** MIG mode after the next GPU reset (differs from current while a switch waits for one). */
  pending: boolean;
  instances: GpuInstance[];
}

export interface Gpu {
  /** Position among NVIDIA GPUs sorted by PCI address (vgpu-device-manager's index). */
  index: number;
  pci: PciFunction;
  model: GpuModel;
  framework: Framework;
  /** Set when framework is `unusable`, or to say why a framework is not available (e.g. no IOMMU). */
  unusableReason: string | null;
  /** What the GPU can be used for on this node, each with the reason when it cannot. */
  capabilities: Capabilities;
  /** Other functions in the GPU's IOMMU group (often its audio function). */
  companions: string[];
  /** ID → type catalog for this card and driver version. */
  catalog: VgpuType[];
  /** Whether mixed vGPU sizes are enabled (null = unknown). */
  heterogeneousMode: boolean | null;
  /** MIG mode and GPU instances of a GPU whose board has MIG-backed profiles; null: not such a GPU, or cannot be told (nvidia-smi unreachable). */
  mig: MigState | null;
  /**
   * The GPUs this one reaches over NVLink, directly or through others, named by
   * the lowest PF address among them (itself included); null or absent when
   * the topology is unknown (nvidia-smi unreachable, GPU not on the nvidia
   * driver) or the GPU has no NVLink peer.
   */
  nvlinkIsland?: string | null;
  vfs: VgpuVf[];
  mdevParents: MdevParent[];
  warnings: Warning[];
}

export interface NodeInfo {
  iommuEnabled: boolean;
  /** Relevant modules present under /sys/module. */
  modules: string[];
  mdevBusPresent: boolean;
  /** `/sys/module/nvidia/version`. */
  nvidiaDriverVersion: string | null;
  /** Whether the NVIDIA driver is a vGPU host (vGPU manager) driver. */
  vgpuHostDriver: boolean;
  kernelRelease: string | null;
  /** Registered PCI drivers of interest (vfio-pci, nvidia, vendor VFIO variants). */
  vfioDrivers: string[];
}

export interface Inventory {
  schemaVersion: number;
  /** Where it was read from (host, tree, simulator). */
  source: string;
  node: NodeInfo;
  gpus: Gpu[];
  /** Non-GPU functions that matter (audio companions, other NVIDIA functions such as NVSwitch). */
  otherFunctions: PciFunction[];
  warnings: Warning[];
}
