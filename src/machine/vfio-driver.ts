/**
 * Which VFIO driver takes a GPU for passthrough: a vendor VFIO variant driver
 * when one of the kernel's `modules.alias` lines matches the device's modalias
 * with the `vfio_pci:` prefix (how the kernel and gpu-operator's vfio-manage
 * pick e.g. nvgrace_gpu_vfio_pci), else plain vfio-pci.
 */
import type { Gpu, Inventory } from '../inventory/types.js';
import type { SysfsPort } from '../sysfs/port.js';

/** Compile a modules.alias glob (`*`, `?`, `[...]`) to an anchored regex. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += `[${glob.slice(i + 1, end).replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The vendor VFIO variant module for a device, or null. */
function vfioVariantFor(modalias: string | null, modulesAlias: string | undefined): string | null {
  if (!modalias || !modulesAlias || !modalias.startsWith('pci:')) return null;
  const key = `vfio_${modalias}`;
  for (const line of modulesAlias.split('\n')) {
    const m = /^alias\s+(vfio_pci:\S+)\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    if (globToRegExp(m[1]!).test(key)) return m[2]!;
  }
  return null;
}

/** Module name to the PCI driver name it registers (`nvgrace_gpu_vfio_pci` registers as `nvgrace-gpu-vfio-pci` on some kernels; vfio_pci as vfio-pci). */
function driverNameForModule(module: string, registeredDrivers: readonly string[]): string {
  if (registeredDrivers.includes(module)) return module;
  const dashed = module.replace(/_/g, '-');
  if (registeredDrivers.includes(dashed)) return dashed;
  return module;
}

/** The chooser for one inventory: reads the kernel's modules.alias and the registered drivers once. */
export function vfioDriverChooser(port: SysfsPort, inv: Inventory): (g: Gpu) => string {
  const alias = inv.node.kernelRelease ? port.readModulesAlias(inv.node.kernelRelease) : undefined;
  const drivers = port.listDrivers();
  return (g) => {
    const mod = vfioVariantFor(g.pci.modalias, alias);
    return mod ? driverNameForModule(mod, drivers) : 'vfio-pci';
  };
}
