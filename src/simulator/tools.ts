import type { HostTools } from '../sysfs/host-tools.js';
import { checkPciAddress, type PciAddress } from '../model/pci.js';
import type { SimulatedNode } from './node.js';

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
}
