#!/usr/bin/env node
/**
 * The `vmgpu` command: the table of commands, and the one place where an
 * error becomes a message and a documented exit code (src/cli/exit-codes.ts,
 * docs/cli.md); a stack trace is printed only with VMGPU_DEBUG=1.
 *
 * A command's code is loaded only when it runs: each group of commands is a
 * module behind a dynamic import, so `vmgpu --version` loads none of them,
 * `discover` loads the inventory but not the planner, and only `agent` and
 * its kind load the Kubernetes and gRPC clients.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { cutLines, cutQuoted, quoteCut } from '../io/cut.js';
import { write, type Command } from './command.js';
import { CliError, EXIT, exitCodeOf } from './exit-codes.js';
import { isCaptureArchive } from './flags.js';
import { flushAndExit } from './output.js';

type Group = () => Promise<Record<string, Command>>;
const read: Group = async () => (await import('./read-commands.js')).readCommands;
const sim: Group = async () => (await import('./sim-commands.js')).simCommands;
const config: Group = async () => (await import('./config-commands.js')).configCommands;
const serve: Group = async () => (await import('./serve-commands.js')).serveCommands;
const guest: Group = async () => ({ 'guest cloud-init': (await import('./guest.js')).guestCloudInitCommand });

/** Every command, in the order `vmgpu --help` lists them, and the module that holds it. */
export const COMMANDS: Readonly<Record<string, Group>> = {
  discover: read,
  capture: read,
  'sim create': sim,
  'sim models': sim,
  'sim hold': sim,
  'sim release': sim,
  'validate-config': config,
  plan: config,
  apply: config,
  assert: config,
  export: config,
  'import cozystack': config,
  agent: serve,
  'device-plugin': serve,
  validate: serve,
  'kubevirt permitted-host-devices': serve,
  'kubevirt sync': serve,
  'guest cloud-init': guest,
};

/** Commands that change the node: never run on a capture archive. */
const CHANGES_THE_NODE = new Set(['apply', 'agent']);

async function loadCommand(name: string): Promise<Command> {
  const cmd = (await COMMANDS[name]!())[name];
  if (!cmd) throw new Error(`internal error: command ${name} is not in its module`);
  return cmd;
}

async function help(): Promise<string> {
  const lines = ['vmgpu: GPUs for virtual machines (SR-IOV vGPU, mdev vGPU, passthrough)', '', 'Commands:'];
  for (const name of Object.keys(COMMANDS)) lines.push(`  ${name.padEnd(34)} ${(await loadCommand(name)).summary}`);
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
    write(await help());
    return name ? EXIT.OK : EXIT.BAD_INPUT;
  }
  if (name === '--version') {
    write(readVersion());
    return EXIT.OK;
  }
  if (!COMMANDS[name] && rest[0] && COMMANDS[`${name} ${rest[0]}`]) {
    name = `${name} ${rest[0]}`;
    rest = rest.slice(1);
  }
  if (!COMMANDS[name]) {
    const groups = Object.keys(COMMANDS).filter((k) => k.startsWith(`${name} `));
    throw new CliError(groups.length ? `usage: vmgpu ${name} ${groups.map((g) => g.split(' ')[1]).join('|')} ...` : `unknown command ${quoteCut(name)}; run \`vmgpu --help\``);
  }
  const cmd = await loadCommand(name);
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
  const archive = parsed.values['sysfs-root'];
  if (CHANGES_THE_NODE.has(name) && isCaptureArchive(archive)) {
    throw new CliError(
      `${name} cannot change a capture archive (${archive}): a capture is evidence of a node, never a node to change, and vmgpu runs nothing from it. ` +
        `To see what the config would do there: vmgpu plan --sysfs-root ${archive} -f FILE -c NAME; to try it, load a simulated node (vmgpu sim create) and use --simulate DIR.`,
    );
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
  const code = exitCodeOf(err);
  const msg = e?.message ?? String(err);
  // Cut as a last resort: no message should be megabytes, but its values come from users.
  process.stderr.write(`vmgpu: ${cutLines(cutQuoted(msg), 200)}\n`);
  if (process.env.VMGPU_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  return code;
}

const isMain = process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname);
if (isMain) {
  main(process.argv.slice(2)).then(flushAndExit, (err: unknown) => flushAndExit(report(err)));
}
