/**
 * `vmgpu validate-config | plan | apply | assert | export | import cozystack`:
 * the declarative config engine on the command line. The flow of a config
 * value: file (src/spec/load.ts) -> plan (src/plan/plan.ts, pure) -> apply
 * (src/apply/apply.ts) -> the one write method in src/sysfs/port.ts.
 */
import * as os from 'node:os';
import { applyPlan, type ApplyResult } from '../apply/apply.js';
import { parseDuration } from '../serve/kube/backoff.js';
import type { Inventory } from '../inventory/types.js';
import type { Machine } from '../machine/machine.js';
import { planOn } from '../machine/plan-on.js';
import { describeAction, type Plan } from '../plan/types.js';
import { validateOnPaper } from '../plan/validate.js';
import { isConfigError, type ConfigFile } from '../spec/config.js';
import { cozystackToConfig, loadCozystackFile } from '../spec/cozystack.js';
import { checkConfigName } from '../spec/grammar.js';
import { loadConfigFile, selectConfig } from '../spec/load.js';
import { serializeConfig } from '../spec/serialize.js';
import { write, type Command } from './command.js';
import { exportConfig } from './export-config.js';
import { lockNode, openMachine, GLOBAL_OPTIONS, type GlobalFlags } from './context.js';
import { CliError, EXIT } from './exit-codes.js';
import { table } from './table.js';

const CONFIG_OPTIONS = {
  ...GLOBAL_OPTIONS,
  file: { type: 'string', short: 'f' },
  config: { type: 'string', short: 'c' },
  'node-name': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Load a config file (a bad one throws ConfigError: exit 2); null when no file was given. */
export function loadConfigOrNull(path: string | undefined): ConfigFile | null {
  if (!path) return null;
  return loadConfigFile(path);
}

function loadConfig(v: Record<string, unknown>): ConfigFile {
  const file = loadConfigOrNull(v.file as string | undefined);
  if (!file) throw new CliError('give the config file with -f FILE');
  return file;
}

function configName(v: Record<string, unknown>): string {
  const c = (v.config as string | undefined) ?? process.env.DEFAULT_VGPU_CONFIG;
  if (!c) throw new CliError('name the config with -c NAME (or set DEFAULT_VGPU_CONFIG)');
  return c;
}

export function nodeIdentity(v: Record<string, unknown>): string {
  return (v['node-name'] as string | undefined) ?? process.env.NODE_NAME ?? os.hostname();
}

export function formatPlan(plan: Plan): string {
  const out: string[] = [];
  if (plan.errors.length) {
    out.push(`config ${plan.configName} cannot be applied on this node (nothing will be written):`);
    for (const e of plan.errors) out.push(`  ${e.where}: ${e.message}`);
    return out.join('\n');
  }
  const rows = plan.gpus.map((g) => [g.gpu, g.model, g.mode, Object.entries(g.want).map(([p, n]) => `${p} x${n}`).join(', ') || '-', String(g.kept), String(plan.actions.filter((a) => a.gpu === g.gpu).length)]);
  out.push(table(['GPU', 'MODEL', 'MODE', 'WANT', 'KEPT', 'CHANGES'], rows));
  out.push('');
  if (plan.actions.length === 0) out.push(plan.undetermined.length ? 'No changes.' : 'No changes: the node already matches.');
  else {
    out.push(`${plan.actions.length} change(s):`);
    for (const a of plan.actions) out.push(`  ${describeAction(a)}`);
  }
  if (plan.blocked.length) {
    out.push('', `${plan.blocked.length} change(s) blocked by devices in use (applied once they are released):`);
    for (const b of plan.blocked) out.push(`  ${b.change}: ${b.reason}`);
  }
  out.push(...formatUndetermined(plan));
  return out.join('\n');
}

/** The vGPUs vmgpu cannot name, grouped by the fix, with what it means: their GPUs are left as they are. */
export function formatUndetermined(plan: Plan): string[] {
  if (plan.undetermined.length === 0) return [];
  const gpus = [...new Set(plan.undetermined.map((u) => u.gpu))];
  const out = ['', `vmgpu cannot tell what is on ${gpus.length} GPU(s) (${gpus.join(', ')}), so nothing on them changes:`];
  for (const u of plan.undetermined) out.push(`  ${u.reason}`);
  for (const fix of new Set(plan.undetermined.map((u) => u.fix))) out.push(`  To fix: ${fix}.`);
  return out;
}

/** Load -f, open the machine, select -c and plan: the start of plan, apply and assert. */
async function planFromFlags(v: Record<string, unknown>): Promise<{ machine: Machine; plan: Plan }> {
  const file = loadConfig(v);
  const machine = openMachine(v as GlobalFlags);
  const { plan } = await planOn(machine, { file, name: configName(v), nodeId: nodeIdentity(v) });
  return { machine, plan };
}

/** `--wait DURATION` (default 1m): how long apply waits for another writer of the node. */
function waitMs(v: Record<string, unknown>): number {
  const text = (v.wait as string | undefined) ?? '1m';
  return parseDuration(text, '--wait');
}

function planErrorsExit(plan: Plan): void {
  if (plan.errors.length) throw new CliError(formatPlan(plan), EXIT.BAD_INPUT);
}

export function formatApply(res: ApplyResult): string {
  const out: string[] = [];
  for (const s of res.steps) out.push(`${s.outcome.padEnd(7)} ${describeAction(s.action)}${s.detail ? ` (${s.detail})` : ''}`);
  if (res.blocked.length) {
    out.push('', `${res.blocked.length} change(s) blocked by devices in use; run apply again once they are released:`);
    for (const b of res.blocked) out.push(`  ${b.change}: ${b.reason}`);
  }
  if (res.failure) out.push('', `FAILED: ${res.failure.message}`);
  return out.join('\n');
}

export const configCommands: Record<string, Command> = {
  'validate-config': {
    summary: 'check a config file without touching hardware: format, and what plan would refuse on any node (profiles, counts, mixing, conflicting entries)',
    usage: 'vmgpu validate-config -f FILE [-c NAME]',
    options: { file: { type: 'string', short: 'f' }, config: { type: 'string', short: 'c' } },
    async run(v) {
      const file = loadConfig(v);
      if (v.config) {
        selectConfig(file, String(v.config));
      }
      const { errors, notes } = validateOnPaper(file, v.config ? String(v.config) : null);
      if (errors.length) throw new CliError(errors.map((e) => `${e.where}: ${e.message}`).join('\n'), EXIT.BAD_INPUT);
      for (const n of notes) write(`note: ${n}`);
      const names = file.configs.map((c) => c.name);
      write(`${file.filename}: valid (${names.length} config(s)${names.length <= 12 ? `: ${names.join(', ')}` : ''})`);
      return EXIT.OK;
    },
  },
  plan: {
    summary: 'show the changes that would make this node match a config',
    usage: 'vmgpu plan -f FILE -c NAME [--json] [--sysfs-root DIR | --simulate DIR]',
    options: CONFIG_OPTIONS,
    async run(v) {
      const { plan } = await planFromFlags(v);
      if (v.json) write(JSON.stringify(plan, null, 2));
      else if (!plan.errors.length) write(formatPlan(plan));
      planErrorsExit(plan);
      return EXIT.OK;
    },
  },
  apply: {
    summary: 'make this node match a config (safe: validates everything first, never touches devices in use)',
    usage: 'vmgpu apply -f FILE -c NAME [--json] [--wait 1m] [--sysfs-root DIR | --simulate DIR]',
    options: { ...CONFIG_OPTIONS, wait: { type: 'string' } },
    async run(v) {
      const lock = await lockNode(v as GlobalFlags, 'vmgpu apply', waitMs(v));
      let res: ApplyResult;
      let plan: Plan;
      try {
        const planned = await planFromFlags(v);
        plan = planned.plan;
        planErrorsExit(plan);
        try {
          res = await applyPlan(plan, { port: planned.machine.port, tools: planned.machine.tools });
        } finally {
          planned.machine.commit();
        }
      } finally {
        lock.release();
      }
      const undetermined = formatUndetermined(plan);
      if (v.json) write(JSON.stringify({ ...res, undetermined: plan.undetermined }, null, 2));
      else write([formatApply(res) || (undetermined.length ? '' : 'No changes: the node already matches.'), ...undetermined].join('\n').trim());
      if (res.failure) return EXIT.FAILURE;
      if (plan.undetermined.length) return EXIT.UNDETERMINED;
      if (res.blocked.length) return EXIT.BLOCKED;
      return EXIT.OK;
    },
  },
  assert: {
    summary: 'exit 0 if the node matches a config, 3 if not (with the differences)',
    usage: 'vmgpu assert -f FILE -c NAME [--sysfs-root DIR | --simulate DIR]',
    options: CONFIG_OPTIONS,
    async run(v) {
      const { plan } = await planFromFlags(v);
      planErrorsExit(plan);
      if (plan.undetermined.length) {
        // Never claim a mismatch (or a match) vmgpu cannot know.
        write([`cannot tell whether the node matches config ${plan.configName}:`, ...formatUndetermined(plan).slice(1)].join('\n'));
        return EXIT.UNDETERMINED;
      }
      if (plan.actions.length === 0 && plan.blocked.length === 0) {
        write(`node matches config ${plan.configName}`);
        return EXIT.OK;
      }
      write(`node does not match config ${plan.configName}:`);
      for (const a of plan.actions) write(`  needs: ${describeAction(a)}`);
      for (const b of plan.blocked) write(`  needs: ${b.change} (blocked: ${b.reason})`);
      return EXIT.MISMATCH;
    },
  },
  export: {
    summary: "print the node's current layout as a config file",
    usage: 'vmgpu export [--name NAME] [--sysfs-root DIR | --simulate DIR]',
    options: { ...GLOBAL_OPTIONS, name: { type: 'string' } },
    async run(v) {
      const name = (v.name as string | undefined) ?? 'current';
      const badName = checkConfigName(name);
      if (badName) throw new CliError(`--name: ${badName}`);
      const inv = await openMachine(v as GlobalFlags).inventory();
      const { file, notes } = exportConfig(inv, name);
      write(serializeConfig(file, { header: [`Exported by vmgpu from ${inv.source} on ${new Date().toISOString()}`, ...notes] }));
      return EXIT.OK;
    },
  },
  'import cozystack': {
    summary: 'convert a Cozystack vgpu-profiles ConfigMap (<bus-id>=<profile-id> lines) into a config, resolving IDs on this node',
    usage: 'vmgpu import cozystack FILE [--name NAME] [--sysfs-root DIR | --simulate DIR]',
    options: { ...GLOBAL_OPTIONS, name: { type: 'string' } },
    async run(v, pos) {
      const path = pos[0];
      if (!path) throw new CliError('usage: vmgpu import cozystack FILE');
      const configName = (v.name as string | undefined) ?? 'imported';
      // Every name is checked before the node is read.
      const badName = checkConfigName(configName);
      if (badName) throw new CliError(`--name: ${badName}`);
      const { lines, error: parseError } = loadCozystackFile(path);
      // Lines that do not parse never reach the node; the others are resolved so one run reports every problem.
      if (lines.length === 0 && parseError) throw parseError;
      const inv = await openMachine(v as GlobalFlags).inventory({ fullCatalog: true });
      const cannotName: string[] = [];
      try {
        const file = cozystackToConfig(
          lines,
          (busId, profileId) => {
            const g = inv.gpus.find((x) => x.pci.sriov?.vfs.includes(busId));
            if (!g) return { error: `${busId} is not a VF of any NVIDIA GPU on this node (are the VFs enabled?)` };
            const vfIndex = g.pci.sriov!.vfs.indexOf(busId);
            if (profileId === 0) return { pf: g.pci.address, vfIndex, profile: null };
            const t = g.catalog.find((c) => c.id === profileId);
            if (t) return { pf: g.pci.address, vfIndex, profile: t.profile };
            const where = `${g.model.name} ${g.pci.address} with driver ${inv.node.nvidiaDriverVersion ?? '?'}`;
            if (!catalogIsComplete(g)) {
              // The card lists only what still fits: an ID missing from a partial catalog may well be one of its types.
              cannotName.push(`${busId}: vmgpu cannot name profile ID ${profileId} on ${where}: no free VF lists it, the catalog has not seen it and nvidia-smi did not answer`);
              // Shown with the file's other problems when there are any (exit 2); alone, the list below and its fix (exit 6).
              return { error: `profile ID ${profileId} cannot be named on ${where}: no free VF lists it and nvidia-smi did not answer; run the import where nvidia-smi works` };
            }
            return { error: `profile ID ${profileId} is not a vGPU type of ${where} (known: ${g.catalog.map((c) => `${c.id}=${c.profile}`).join(', ')})` };
          },
          configName,
          parseError,
        );
        write(serializeConfig(file, { header: [`Imported by vmgpu from ${path} (Cozystack vgpu-profiles format)`] }));
      } catch (err) {
        if (isConfigError(err) && cannotName.length > 0 && cannotName.length === err.problems.length) {
          throw new CliError([...cannotName, `To fix: run the import where nvidia-smi works (the host), or once a VF of a GPU of this model and driver is free so vmgpu's catalog learns the names.`].join('\n'), EXIT.UNDETERMINED);
        }
        throw err;
      }
      return EXIT.OK;
    },
  },
};

/**
 * Whether the GPU's catalog lists every type it supports: nvidia-smi and mdev
 * type directories do, and so do the creatable lists of a GPU with no vGPU yet;
 * a fuller card's lists and the cache may not.
 */
function catalogIsComplete(g: Inventory['gpus'][number]): boolean {
  if (g.catalog.some((t) => t.source === 'nvidia-smi' || t.source === 'mdev')) return true;
  return g.vfs.length > 0 && g.vfs.every((v) => v.currentTypeId === 0);
}
