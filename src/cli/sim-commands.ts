/**
 * `vmgpu sim ...`: create a simulated GPU node on disk, list what the
 * simulator knows, and mark its devices as held by a (simulated) VM.
 */
import { createSimulatedNodeDir, setHeld, simulatorDrivers, simulatorModels, type SimMode } from '../machine/simulation.js';
import { write, type Command } from './command.js';
import { CliError, EXIT } from './exit-codes.js';

const SIM_MODES: SimMode[] = ['sriov-vgpu', 'mdev-vgpu', 'passthrough', 'host'];

export const simCommands: Record<string, Command> = {
  'sim create': {
    summary: 'materialise a simulated GPU node as a directory tree (usable with --sysfs-root and --simulate)',
    usage:
      'vmgpu sim create --out DIR [--model L40S] [--gpus 4] [--mode sriov-vgpu|mdev-vgpu|passthrough|host] [--profiles L40S-12Q,L40S-12Q] [--driver-version V] [--no-iommu] [--no-vfs] [--heterogeneous] [--no-nvidia-smi] [--nvlink 0+1,2+3]\n' +
      '       (repeat --model/--gpus/--mode groups by giving comma-separated lists of equal length, e.g. --model L40S,A100 --gpus 2,1 --mode sriov-vgpu,mdev-vgpu;\n' +
      '        --nvlink: groups of GPU indices, in PCI address order, joined by NVLink, as nvidia-smi topo -m will show them)',
    options: {
      out: { type: 'string' },
      model: { type: 'string', default: 'L40S' },
      gpus: { type: 'string', default: '1' },
      mode: { type: 'string', default: 'sriov-vgpu' },
      profiles: { type: 'string' },
      'driver-version': { type: 'string' },
      'no-iommu': { type: 'boolean' },
      'no-vfs': { type: 'boolean' },
      heterogeneous: { type: 'boolean' },
      'no-nvidia-smi': { type: 'boolean' },
      nvlink: { type: 'string' },
    },
    async run(v) {
      const out = v.out as string | undefined;
      if (!out) throw new CliError('sim create needs --out DIR');
      const models = String(v.model).split(',');
      const counts = String(v.gpus).split(',');
      const modes = String(v.mode).split(',');
      if (counts.length !== models.length && counts.length !== 1) throw new CliError('--gpus must give one count, or one per --model');
      if (modes.length !== models.length && modes.length !== 1) throw new CliError('--mode must give one mode, or one per --model');
      const gpus = models.map((model, i) => {
        const mode = (modes[i] ?? modes[0]!) as SimMode;
        if (!SIM_MODES.includes(mode)) throw new CliError(`--mode ${mode}: choose one of ${SIM_MODES.join(', ')}`);
        const count = Number(counts[i] ?? counts[0]);
        if (!Number.isInteger(count) || count < 1 || count > 16) throw new CliError(`--gpus ${counts[i] ?? counts[0]}: give a whole number from 1 to 16`);
        return {
          model,
          count,
          mode,
          ...(v['no-vfs'] ? { vfsEnabled: false } : {}),
          ...(v.heterogeneous ? { heterogeneous: true } : {}),
          ...(v.profiles && i === 0 ? { profiles: String(v.profiles).split(',').filter(Boolean) } : {}),
        };
      });
      const node = createSimulatedNodeDir(
        {
          gpus,
          ...(v['driver-version'] ? { driverVersion: String(v['driver-version']) } : {}),
          ...(v['no-iommu'] ? { iommu: false } : {}),
          ...(v['no-nvidia-smi'] ? { nvidiaSmi: false } : {}),
          ...(v.nvlink ? { nvlink: nvlinkGroups(String(v.nvlink)) } : {}),
        },
        out,
      );
      write(`simulated node written to ${out}: ${node.gpus} GPU(s), ${node.files} files, ${node.links} links (driver ${node.driverVersion})`);
      write(`read it:   vmgpu discover --sysfs-root ${out}`);
      write(`change it: vmgpu apply --simulate ${out} -f CONFIG -c NAME`);
      return EXIT.OK;
    },
  },
  'sim models': {
    summary: 'list the GPU models and driver versions the simulator knows',
    usage: 'vmgpu sim models',
    options: {},
    async run() {
      for (const m of simulatorModels()) write(`${m.key.padEnd(12)} 10de:${m.deviceId}  ${m.framework === 'sriov' ? 'SR-IOV vGPU' : 'mdev vGPU'}${m.totalVfs ? `, ${m.totalVfs} VFs` : ''}`);
      write(`driver versions: ${simulatorDrivers().map((d) => `${d.version}${d.rejectsTrailingNewline ? ' (rejects trailing newline)' : ''}`).join(', ')}`);
      return EXIT.OK;
    },
  },
  'sim hold': {
    summary: 'mark a VF, GPU (PCI address) or mdev (UUID) of a simulated node as held by a running VM',
    usage: 'vmgpu sim hold DIR ADDRESS|UUID',
    options: {},
    async run(_v, pos) {
      return simHold(pos, true);
    },
  },
  'sim release': {
    summary: 'release a device held with `sim hold`',
    usage: 'vmgpu sim release DIR ADDRESS|UUID',
    options: {},
    async run(_v, pos) {
      return simHold(pos, false);
    },
  },
};

async function simHold(pos: string[], hold: boolean): Promise<number> {
  const [dir, id] = pos;
  if (!dir || !id) throw new CliError(`usage: vmgpu sim ${hold ? 'hold' : 'release'} DIR ADDRESS|UUID`);
  // The name is checked first: nothing is read for a name that could never be held.
  const key = setHeld(dir, id, hold);
  write(`${key} ${hold ? 'is now held by a (simulated) VM' : 'released'}`);
  return EXIT.OK;
}

/** `0+1,2+3` -> [[0, 1], [2, 3]]; the simulator checks the indices against its GPUs. */
function nvlinkGroups(text: string): number[][] {
  return text.split(',').map((group) => {
    const ids = group.split('+').map((x) => (/^[0-9]{1,2}$/.test(x.trim()) ? Number(x.trim()) : NaN));
    if (ids.length < 2 || ids.some(Number.isNaN)) throw new CliError(`--nvlink ${text}: give groups of GPU indices joined by +, separated by commas (e.g. 0+1,2+3)`);
    return ids;
  });
}
