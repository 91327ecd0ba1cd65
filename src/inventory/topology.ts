/**
 * The NVLink part of an inventory: which GPUs are joined by NVLink, as
 * islands (connected groups), from NVIDIA's tools (sysfs does not show NVLink).
 * Optional everywhere: unknown topology is no island, never an error.
 */
import { checkPciAddress } from '../model/pci.js';
import type { HostTools } from '../sysfs/host-tools.js';
import type { Inventory } from './types.js';

/** GPU address -> its island's name (the lowest address in it), for every GPU with an NVLink peer. */
export function nvlinkIslands(pairs: readonly (readonly [string, string])[]): Map<string, string> {
  const parent = new Map<string, string>();
  const root = (a: string): string => {
    let r = a;
    while (parent.get(r) !== r) r = parent.get(r)!;
    return r;
  };
  for (const [a, b] of pairs) {
    for (const x of [a, b]) if (!parent.has(x)) parent.set(x, x);
    const [ra, rb] = [root(a), root(b)];
    // The lower address names the island.
    if (ra !== rb) parent.set(ra < rb ? rb : ra, ra < rb ? ra : rb);
  }
  return new Map([...parent.keys()].map((a) => [a, root(a)]));
}

/**
 * Set each GPU's `nvlinkIsland` from `nvidia-smi topo -m`; null where the GPU
 * has no NVLink peer or nvidia-smi does not see it (a GPU on vfio-pci). Skipped
 * (left unknown) with fewer than two GPUs on the nvidia driver.
 */
export async function readNvlinkIslands(inv: Inventory, tools: HostTools): Promise<void> {
  const onNvidia = inv.gpus.filter((g) => g.pci.driver === 'nvidia').map((g) => checkPciAddress(g.pci.address));
  if (onNvidia.length < 2) return;
  let pairs: [string, string][] | undefined;
  try {
    pairs = await tools.nvlinkPairs(onNvidia);
  } catch {
    pairs = undefined;
  }
  if (!pairs) return;
  const islands = nvlinkIslands(pairs);
  for (const g of inv.gpus) g.nvlinkIsland = islands.get(g.pci.address) ?? null;
}
