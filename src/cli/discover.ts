/** `vmgpu discover`: what vmgpu sees on this node, as a table or as JSON (docs/discover-json.md). */
import type { Gpu, Inventory } from '../inventory/types.js';
import { table } from './table.js';

const FRAMEWORK_LABEL: Record<Gpu['framework'], string> = {
  'sriov-vgpu': 'SR-IOV vGPU',
  'mdev-vgpu': 'mdev vGPU',
  passthrough: 'passthrough',
  'host-driver': 'host driver',
  unusable: 'unusable',
};

/** `L40S-12Q ×4 (2 free)` style summary of a GPU's vGPUs. */
function vgpuSummary(g: Gpu): string {
  if (g.framework === 'sriov-vgpu') {
    const by = new Map<string, number>();
    let free = 0;
    for (const v of g.vfs) {
      if (v.currentTypeId === 0) {
        free++;
        continue;
      }
      const k = v.currentProfile ?? `unknown type ${v.currentTypeId}`;
      by.set(k, (by.get(k) ?? 0) + 1);
    }
    const parts = [...by].map(([k, n]) => `${k} x${n}`);
    parts.push(`${free}/${g.vfs.length} VFs free`);
    return parts.join(', ');
  }
  if (g.framework === 'mdev-vgpu') {
    const by = new Map<string, number>();
    for (const p of g.mdevParents) for (const i of p.instances) {
      const k = i.typeName?.replace(/^(NVIDIA|GRID) /, '') ?? i.typeDir;
      by.set(k, (by.get(k) ?? 0) + 1);
    }
    const parts = [...by].map(([k, n]) => `${k} x${n}`);
    if (parts.length === 0) parts.push('no vGPUs');
    return parts.join(', ');
  }
  if (g.framework === 'passthrough') return `whole GPU${g.companions.length ? ` + ${g.companions.length} companion function(s)` : ''}`;
  return '-';
}

export function formatDiscover(inv: Inventory): string {
  const out: string[] = [];
  const n = inv.node;
  out.push(
    `Node: ${inv.source}; IOMMU ${n.iommuEnabled ? 'on' : 'off'}; NVIDIA driver ${n.nvidiaDriverVersion ?? (n.modules.includes('nvidia') ? 'loaded (version unknown)' : 'not loaded')}${n.vgpuHostDriver ? ' (vGPU manager)' : ''}; ` +
      `mdev bus ${n.mdevBusPresent ? 'present' : 'absent'}${n.kernelRelease ? `; kernel ${n.kernelRelease}` : ''}`,
  );
  out.push(`Modules: ${n.modules.length ? n.modules.join(' ') : '(none of interest loaded)'}`);
  out.push('');
  if (inv.gpus.length === 0) {
    out.push('No NVIDIA GPUs found.');
  } else {
    const rows = inv.gpus.map((g) => [
      String(g.index),
      g.pci.address,
      g.model.name,
      FRAMEWORK_LABEL[g.framework],
      g.pci.driver ?? '-',
      vgpuSummary(g),
      g.pci.numaNode < 0 ? '-' : String(g.pci.numaNode),
      g.pci.iommuGroup === null ? '-' : String(g.pci.iommuGroup),
    ]);
    out.push(table(['GPU', 'ADDRESS', 'MODEL', 'FRAMEWORK', 'DRIVER', 'VGPUS', 'NUMA', 'IOMMU'], rows));
    out.push('');
    for (const g of inv.gpus) {
      const notes: string[] = [];
      if (g.unusableReason) notes.push(`unusable: ${g.unusableReason}`);
      const c = g.capabilities;
      notes.push(
        `containers ${c.containers.usable ? 'yes' : 'no'}, passthrough ${c.passthrough.usable ? 'yes' : 'no'}, vGPU ${c.vgpu.usable ? 'yes' : 'no'}`,
      );
      if (!c.passthrough.usable && c.passthrough.reason) notes.push(`passthrough: ${c.passthrough.reason}`);
      if (!c.vgpu.usable && c.vgpu.reason) notes.push(`vGPU: ${c.vgpu.reason}`);
      if (g.heterogeneousMode) notes.push('mixed-size vGPU mode on');
      // Unknown types get their own section below, with what vmgpu does and how to name them.
      for (const w of g.warnings) if (w.code !== 'unknown-type-id') notes.push(`warning: ${w.message}`);
      out.push(`GPU ${g.index} ${g.pci.address} ${g.pci.name}:`);
      for (const note of notes) out.push(`  - ${note}`);
    }
  }
  out.push(...formatUnknownTypes(inv));
  if (inv.warnings.length) {
    out.push('');
    out.push('Warnings:');
    for (const w of inv.warnings) out.push(`  - ${w.message}`);
  }
  return out.join('\n');
}

/**
 * The vGPUs whose type no source names: which, what vmgpu does about them
 * (nothing: the GPU is left as it is), and every way to give them a name.
 */
function formatUnknownTypes(inv: Inventory): string[] {
  const rows: string[] = [];
  const cards = new Set<string>();
  for (const g of inv.gpus) {
    const byId = new Map<number, string[]>();
    for (const v of g.vfs) if (v.currentTypeId !== 0 && v.currentProfile === null) byId.set(v.currentTypeId, [...(byId.get(v.currentTypeId) ?? []), v.address]);
    for (const [id, vfs] of byId) rows.push(`  GPU ${g.index} ${g.pci.address} (${g.model.name}): ${vfs.join(', ')} hold type ID ${id}`);
    if (byId.size) cards.add(g.pci.deviceId);
  }
  if (rows.length === 0) return [];
  const version = inv.node.nvidiaDriverVersion ?? 'unknown';
  return [
    '',
    'Unknown vGPU types: vmgpu leaves these GPUs exactly as they are (apply and assert exit 6, plan lists them) until the types are named:',
    ...rows,
    'Any one of these names them:',
    "  - make the host driver's nvidia-smi and libnvidia-ml reachable (on a host: the driver's user-space tools; in Kubernetes the Helm chart mounts them from agent.driverRoot);",
    '  - let one VF of such a GPU be free while vmgpu reads the node: its creatable list names every type, and the catalog cache remembers them;',
    `  - run the agent on a node with the same card (PCI device ID ${[...cards].join(', ')}) and driver version ${version}: agents share the names they learn (cluster catalog).`,
    '  See docs/troubleshooting.md "Unknown vGPU types".',
  ];
}
