import type { GpuInstanceInfo, HostTools, MigModeInfo } from '../sysfs/host-tools.js';
import { checkPciAddress, type PciAddress } from '../model/pci.js';
import type { SimulatedNode } from './node.js';
import { nvlinkPairsFrom } from '../sysfs/topo-output.js';

/** NVIDIA's host tools as the simulated node answers them. */
export class SimHostTools implements HostTools {
  constructor(private readonly node: SimulatedNode) {}

  async sriovManageEnable(pf: PciAddress): Promise<void> {
    this.node.sriovManageEnable(checkPciAddress(pf));
  }

  async nvidiaSmiSupportedTypes(pf: PciAddress): Promise<string | undefined> {
    return this.node.nvidiaSmiSupportedTypes(checkPciAddress(pf));
  }

  async heterogeneousMode(pf: PciAddress): Promise<boolean | undefined> {
    return this.node.heterogeneousMode(checkPciAddress(pf));
  }

  async setHeterogeneousMode(pf: PciAddress, enabled: boolean): Promise<void> {
    this.node.setHeterogeneousMode(checkPciAddress(pf), enabled);
  }

  async sriovManageDisable(pf: PciAddress): Promise<void> {
    this.node.sriovManageDisable(checkPciAddress(pf));
  }

  async migMode(pf: PciAddress): Promise<MigModeInfo | undefined> {
    return this.node.migMode(checkPciAddress(pf));
  }

  async setMigMode(pf: PciAddress, enabled: boolean): Promise<void> {
    this.node.setMigMode(checkPciAddress(pf), enabled);
  }

  async gpuInstances(pf: PciAddress): Promise<GpuInstanceInfo[] | undefined> {
    return this.node.gpuInstances(checkPciAddress(pf));
  }

  async createGpuInstance(pf: PciAddress, profile: string | number, start: number): Promise<void> {
    this.node.createGpuInstance(checkPciAddress(pf), profile, start);
  }

  async destroyGpuInstance(pf: PciAddress, id: number): Promise<void> {
    this.node.destroyGpuInstance(checkPciAddress(pf), id);
  }

  /** Parsed from the text the simulated nvidia-smi prints, as on a real host. */
  async nvlinkPairs(_onNvidia: readonly PciAddress[]): Promise<[PciAddress, PciAddress][] | undefined> {
    const out = this.node.nvidiaSmiTopology();
    return out ? nvlinkPairsFrom(out.topo, out.busIds) : undefined;
  }
}
