/** Hand-made inventories for the device plugin unit tests. */
import type { Gpu, Inventory, MdevParent, PciFunction, VgpuType, VgpuVf } from '../../../src/inventory/types.js';

export function pci(address: string, over: Partial<PciFunction> = {}): PciFunction {
  return {
    address,
    vendorId: '10de',
    deviceId: '26b9',
    subsystemVendorId: '10de',
    subsystemDeviceId: '1851',
    classCode: '030200',
    revision: 'a1',
    name: 'AD102GL [L40S]',
    driver: 'nvidia',
    driverOverride: null,
    iommuGroup: 10,
    iommuGroupMembers: [address],
    numaNode: 0,
    sriov: null,
    physfn: null,
    vfioDev: null,
    resetMethods: ['flr'],
    modalias: null,
    ...over,
  };
}

export function vgpuType(id: number, profile: string, prefix = 'NVIDIA'): VgpuType {
  return { id, name: `${prefix} ${profile}`, profile, series: 'Q', framebufferMiB: null, maxInstances: null, migBacked: false, source: 'creatable' };
}

export function vf(address: string, index: number, currentTypeId: number, currentProfile: string | null, over: Partial<VgpuVf> = {}): VgpuVf {
  return {
    address,
    index,
    currentTypeId,
    currentProfile,
    creatableTypeIds: [],
    vgpuParams: null,
    iommuGroup: 100 + index,
    vfioDev: `vfio${index}`,
    numaNode: 0,
    driver: 'nvidia',
    gpuInstanceId: null,
    ...over,
  };
}

export function gpu(address: string, over: Partial<Gpu> & { pciOver?: Partial<PciFunction> } = {}): Gpu {
  const { pciOver, ...rest } = over;
  return {
    index: 0,
    pci: pci(address, pciOver),
    model: { name: 'L40S', profileBoard: 'L40S', vgpuFramework: 'sriov' },
    framework: 'sriov-vgpu',
    unusableReason: null,
    capabilities: {
      containers: { usable: false, reason: 'vGPU host driver' },
      passthrough: { usable: true, reason: null },
      vgpu: { usable: true, reason: null },
    },
    companions: [],
    catalog: [],
    heterogeneousMode: null,
    mig: null,
    vfs: [],
    mdevParents: [],
    warnings: [],
    ...rest,
  };
}

export function mdevParent(address: string, instances: { uuid: string; typeDir: string; typeName: string | null; group?: number }[], types: { dir: string; id: number; name: string; profile: string }[]): MdevParent {
  return {
    address,
    types: types.map((t) => ({ ...t, description: '', availableInstances: 0, deviceApi: 'vfio-pci', framebufferMiB: null, maxInstances: null })),
    instances: instances.map((i) => ({ uuid: i.uuid, typeDir: i.typeDir, typeName: i.typeName, parent: address, iommuGroup: i.group ?? null, vgpuParams: null, gpuInstanceId: null })),
  };
}

export function inventory(gpus: Gpu[], otherFunctions: PciFunction[] = []): Inventory {
  return {
    schemaVersion: 1,
    source: 'test',
    node: { iommuEnabled: true, modules: [], mdevBusPresent: true, nvidiaDriverVersion: '570.00', vgpuHostDriver: true, kernelRelease: '6.8.0', vfioDrivers: ['vfio-pci'] },
    gpus,
    otherFunctions,
    warnings: [],
  };
}

const L40S_24Q = vgpuType(1069, 'L40S-24Q');
export const L40S_12Q = vgpuType(1067, 'L40S-12Q');

/**
 * Two L40S (NUMA 0 and 1) with VFs of two profiles and a free VF, a T4 with
 * two GRID T4-1Q mdevs and one T4-2Q, and an A10 on vfio-pci.
 */
export function mixedNode(): Inventory {
  const l40sA = gpu('0000:18:00.0', {
    catalog: [L40S_24Q, L40S_12Q],
    vfs: [
      vf('0000:18:00.4', 0, 1069, 'L40S-24Q'),
      vf('0000:18:00.5', 1, 1067, 'L40S-12Q'),
      vf('0000:18:00.6', 2, 0, null),
    ],
  });
  const l40sB = gpu('0000:af:00.0', {
    index: 1,
    pciOver: { numaNode: 1, iommuGroup: 20 },
    catalog: [L40S_24Q, L40S_12Q],
    vfs: [vf('0000:af:00.4', 0, 1069, null, { numaNode: 1, iommuGroup: 200, vfioDev: null })],
  });
  const t4 = gpu('0000:3b:00.0', {
    index: 2,
    framework: 'mdev-vgpu',
    model: { name: 'T4', profileBoard: 'T4', vgpuFramework: 'mdev' },
    pciOver: { deviceId: '1eb8', numaNode: 0, iommuGroup: 30, name: 'TU104GL [Tesla T4]' },
    mdevParents: [
      mdevParent(
        '0000:3b:00.0',
        [
          { uuid: '6f3a1e2c-0000-4000-8000-000000000002', typeDir: 'nvidia-222', typeName: 'GRID T4-1Q', group: 41 },
          { uuid: '6f3a1e2c-0000-4000-8000-000000000001', typeDir: 'nvidia-222', typeName: null, group: 40 },
          { uuid: '6f3a1e2c-0000-4000-8000-000000000003', typeDir: 'nvidia-223', typeName: 'GRID T4-2Q', group: 42 },
        ],
        [
          { dir: 'nvidia-222', id: 222, name: 'GRID T4-1Q', profile: 'T4-1Q' },
          { dir: 'nvidia-223', id: 223, name: 'GRID T4-2Q', profile: 'T4-2Q' },
        ],
      ),
    ],
  });
  const a10 = gpu('0000:5e:00.0', {
    index: 3,
    framework: 'passthrough',
    model: { name: 'A10', profileBoard: 'A10', vgpuFramework: 'sriov' },
    pciOver: { deviceId: '2236', driver: 'vfio-pci', iommuGroup: 50, vfioDev: 'vfio7', numaNode: -1, name: 'GA102GL [A10]' },
  });
  return inventory([l40sB, t4, a10, l40sA]);
}

/** A PCI IDs database text holding just what the tests need. */
export const PCI_IDS_TEXT = ['10de  NVIDIA Corporation', '\t2236  GA102GL [A10]', '\t26b9  AD102GL [L40S]', '\t1eb8  TU104GL [Tesla T4]', ''].join('\n');
