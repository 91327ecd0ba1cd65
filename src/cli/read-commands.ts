/**
 * `vmgpu discover` and `vmgpu capture`: read the node (a host, a tree, a
 * capture archive or a simulated node) and show it, or snapshot it.
 */
import { capture } from '../sysfs/capture.js';
import { write, type Command } from './command.js';
import { openMachine, resolveRoots } from './context.js';
import { formatDiscover } from './discover.js';
import { CliError, EXIT } from './exit-codes.js';
import { GLOBAL_OPTIONS, type GlobalFlags } from './flags.js';

export const readCommands: Record<string, Command> = {
  discover: {
    summary: "show the node's GPUs: model, framework, vGPUs by profile, NUMA, IOMMU, warnings",
    usage: 'vmgpu discover [--json] [--sysfs-root DIR|FILE.tar.gz] [--simulate DIR]',
    options: { ...GLOBAL_OPTIONS, json: { type: 'boolean' } },
    async run(v) {
      const machine = openMachine(v as GlobalFlags);
      const inv = await machine.inventory();
      write(v.json ? JSON.stringify(inv, null, 2) : formatDiscover(inv));
      machine.commit();
      return EXIT.OK;
    },
  },
  capture: {
    summary: 'snapshot the sysfs subtree vmgpu reads into a .tar.gz for bug reports and replay',
    usage: 'vmgpu capture --out FILE.tar.gz [--sysfs-root DIR] [--dev-root DIR]',
    options: { ...GLOBAL_OPTIONS, out: { type: 'string' } },
    async run(v) {
      const out = v.out as string | undefined;
      if (!out || !/\.(tar\.gz|tgz)$/.test(out)) throw new CliError('capture needs --out FILE.tar.gz');
      const { roots, kernelRelease } = resolveRoots(v as GlobalFlags);
      const meta = await capture({ sysRoot: roots.sys, devRoot: roots.dev, outFile: out, kernelRelease });
      write(`wrote ${out}: ${meta.files} files, ${meta.links} links, ${meta.skipped.length} skipped (kernel ${meta.kernelRelease ?? 'unknown'}, NVIDIA driver ${meta.nvidiaDriverVersion ?? 'not loaded'})`);
      write(`replay it with: vmgpu discover --sysfs-root ${out}`);
      return EXIT.OK;
    },
  },
};
