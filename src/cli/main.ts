#!/usr/bin/env node
/**
 * The `vmgpu` command. Each subcommand parses its flags, opens the machine
 * (src/cli/context.ts -> src/machine) and calls into the rooms (inventory, plan, apply,
 * serve). Errors become one clear message and a documented exit code
 * (src/cli/exit-codes.ts, docs/cli.md); a stack trace is printed only with
 * VMGPU_DEBUG=1.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { InventoryError } from '../inventory/read.js';
import { createSimulatedNode, materialize, simModels, SIM_DRIVERS, loadSimulation, saveSimulation, type SimMode } from '../simulator/index.js';
import { capture } from '../sysfs/capture.js';
import { InvalidNameError, SysfsError } from '../sysfs/errors.js';
import { parsePciAddress } from '../model/pci.js';
import { openMachine, GLOBAL_OPTIONS, resolveRoots, type GlobalFlags } from './context.js';
import { formatDiscover } from './discover.js';
import { CliError, EXIT } from './exit-codes.js';
import { write, type Command } from './command.js';
import { configCommands } from './config-commands.js';
import { serveCommands } from './serve-commands.js';


const SIM_MODES: SimMode[] = ['sriov-vgpu', 'mdev-vgpu', 'passthrough', 'host'];

const commands: Record<string, Command> = {
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
  'sim create': {
    summary: 'materialise a simulated GPU node as a directory tree (usable with --sysfs-root and --simulate)',
    usage:
      'vmgpu sim create --out DIR [--model L40S] [--gpus 4] [--mode sriov-vgpu|mdev-vgpu|passthrough|host] [--profiles L40S-12Q,L40S-12Q] [--driver-version V] [--no-iommu] [--no-vfs] [--heterogeneous] [--no-nvidia-smi]\n' +
      '       (repeat --model/--gpus/--mode groups by giving comma-separated lists of equal length, e.g. --model L40S,A100 --gpus 2,1 --mode sriov-vgpu,mdev-vgpu)',
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
      let node;
      try {
        node = createSimulatedNode({
          gpus,
          ...(v['driver-version'] ? { driverVersion: String(v['driver-version']) } : {}),
          ...(v['no-iommu'] ? { iommu: false } : {}),
          ...(v['no-nvidia-smi'] ? { nvidiaSmi: false } : {}),
        });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const res = materialize(node, out);
      write(`simulated node written to ${out}: ${node.gpus.length} GPU(s), ${res.files} files, ${res.links} links (driver ${node.driver.version})`);
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
      for (const m of simModels()) write(`${m.key.padEnd(12)} 10de:${m.deviceId}  ${m.framework === 'sriov' ? 'SR-IOV vGPU' : 'mdev vGPU'}${m.totalVfs ? `, ${m.totalVfs} VFs` : ''}`);
      write(`driver versions: ${SIM_DRIVERS.map((d) => `${d.version}${d.rejectsTrailingNewline ? ' (rejects trailing newline)' : ''}`).join(', ')}`);
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
  ...configCommands,
  ...serveCommands,
};

async function simHold(pos: string[], hold: boolean): Promise<number> {
  const [dir, id] = pos;
  if (!dir || !id) throw new CliError(`usage: vmgpu sim ${hold ? 'hold' : 'release'} DIR ADDRESS|UUID`);
  const node = loadSimulation(dir);
  const key = /^[0-9a-fA-F]{8}-/.test(id) ? id.toLowerCase() : parsePciAddress(id);
  if (hold) node.hold(key);
  else node.release(key);
  saveSimulation(node, dir);
  write(`${key} ${hold ? 'is now held by a (simulated) VM' : 'released'}`);
  return EXIT.OK;
}

function help(): string {
  const lines = ['vmgpu: GPUs for virtual machines (SR-IOV vGPU, mdev vGPU, passthrough)', '', 'Commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(34)} ${c.summary}`);
  lines.push(
    '',
    'Global options: --sysfs-root DIR|FILE.tar.gz (default /sys), --dev-root DIR (default /dev), --host-root DIR (default /),',
    '                --pci-ids FILE, --state-dir DIR (default /var/lib/vmgpu), --simulate DIR (act on a simulated node)',
    'Exit codes: 0 ok, 1 failure, 2 bad input (nothing written), 3 assert mismatch, 4 apply blocked by devices in use, 5 no sysfs',
    'Run `vmgpu COMMAND --help` for a command. Docs: docs/cli.md',
  );
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  let name = argv[0];
  let rest = argv.slice(1);
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    write(help());
    return name ? EXIT.OK : EXIT.BAD_INPUT;
  }
  if (name === '--version') {
    write(readVersion());
    return EXIT.OK;
  }
  if (!commands[name] && rest[0] && commands[`${name} ${rest[0]}`]) {
    name = `${name} ${rest[0]}`;
    rest = rest.slice(1);
  }
  const cmd = commands[name];
  if (!cmd) {
    const groups = Object.keys(commands).filter((k) => k.startsWith(`${name} `));
    throw new CliError(groups.length ? `usage: vmgpu ${name} ${groups.map((g) => g.split(' ')[1]).join('|')} ...` : `unknown command ${JSON.stringify(name)}; run \`vmgpu --help\``);
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    write(`${cmd.summary}\nusage: ${cmd.usage}`);
    return EXIT.OK;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\nusage: ${cmd.usage}`);
  }
  return cmd.run(parsed.values as Record<string, unknown>, parsed.positionals);
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

/** Turn any error into a message and an exit code. */
export function report(err: unknown): number {
  const e = err as Error;
  let code: number = EXIT.FAILURE;
  let msg = e?.message ?? String(err);
  if (err instanceof CliError) code = err.exitCode;
  else if (err instanceof InvalidNameError) code = EXIT.BAD_INPUT;
  else if (err instanceof InventoryError) code = EXIT.NO_SYSFS;
  else if (err instanceof SysfsError) msg = `${err.message}`;
  process.stderr.write(`vmgpu: ${msg}\n`);
  if (process.env.VMGPU_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  return code;
}

const isMain = process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname);
if (isMain) {
  // Exit once stdout has been flushed: on a pipe, process.exit() right after a large
  // write (discover/plan --json, export) cut the output at 64 KiB.
  const exit = (code: number) => process.stdout.write('', () => process.exit(code));
  main(process.argv.slice(2)).then(exit, (err: unknown) => exit(report(err)));
}
