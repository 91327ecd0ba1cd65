/**
 * The simulated node's NVLink, as NVIDIA's tools print it: `nvidia-smi topo -m`
 * and `nvidia-smi --query-gpu=index,pci.bus_id --format=csv,noheader`. As on a
 * real host, nvidia-smi sees only the GPUs the nvidia driver holds (a GPU on
 * vfio-pci is invisible, and so are its links), numbered in PCI address order.
 */
import { InputError } from '../model/errors.js';

export interface NvlinkGpu {
  address: string;
  numaNode: number;
  /** Bound to nvidia and present: visible to nvidia-smi. */
  visible: boolean;
}

/** Check a spec's NVLink groups (indices into the node's GPUs in PCI address order). */
export function checkNvlinkGroups(groups: readonly (readonly number[])[] | undefined, gpuCount: number): void {
  for (const [i, group] of (groups ?? []).entries()) {
    if (!Array.isArray(group) || group.length < 2) throw new InputError(`simulator spec: nvlink[${i}] must list at least two GPU indices`);
    for (const g of group) {
      if (!Number.isInteger(g) || g < 0 || g >= gpuCount) throw new InputError(`simulator spec: nvlink[${i}] names GPU ${String(g)}, but the node has GPUs 0 to ${gpuCount - 1} (in PCI address order)`);
    }
  }
}

/** What the two nvidia-smi queries print for these GPUs and NVLink groups. */
export function renderNvidiaSmiTopology(gpus: readonly NvlinkGpu[], groups: readonly (readonly number[])[]): { topo: string; busIds: string } {
  const linked = (a: number, b: number) => groups.some((g) => g.includes(a) && g.includes(b));
  const visible = gpus.map((g, i) => ({ ...g, i })).filter((g) => g.visible);
  const head = ['', ...visible.map((_, k) => `GPU${k}`), 'CPU Affinity', 'NUMA Affinity', 'GPU NUMA ID'].join('\t');
  const rows = visible.map((a, k) => {
    const cells = visible.map((b) => (a.i === b.i ? ' X ' : linked(a.i, b.i) ? 'NV18' : a.numaNode === b.numaNode ? 'NODE' : 'SYS'));
    return [`GPU${k}`, ...cells, a.numaNode >= 0 ? `${a.numaNode * 32}-${a.numaNode * 32 + 31}` : 'N/A', a.numaNode >= 0 ? String(a.numaNode) : 'N/A', 'N/A'].join('\t');
  });
  const legend = ['', 'Legend:', '', '  X    = Self', '  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)', '  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node', '  NV#  = Connection traversing a bonded set of # NVLinks', ''];
  const busIds = visible.map((g, k) => `${k}, 0000${g.address.toUpperCase()}`).join('\n');
  return { topo: [head, ...rows, ...legend].join('\n'), busIds: busIds ? `${busIds}\n` : '' };
}
