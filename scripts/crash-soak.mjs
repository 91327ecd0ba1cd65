#!/usr/bin/env node
// The long version of the crash-point tests (docs/testing.md): real SIGKILLs
// of the installed `vmgpu` at random moments, on a simulated node saved in a
// directory and on a plain directory tree, each followed by the checks a user
// would make. The unit tests (test/unit/apply/crash-on-disk.test.ts,
// test/unit/simulator/persist.test.ts) kill at every file-system change of
// small nodes in process; this kills whole processes on a big one.
//
//   npm run build && node scripts/crash-soak.mjs [--kills 100] [--gpus 8] [--dir /tmp] [--seed 1]
//
// For every kill of `apply --simulate DIR` (alternating between two configs):
//   - `discover --sysfs-root DIR` must either be told the tree is half saved
//     (exit 5) or show exactly the layout `discover --simulate DIR` shows;
//   - `apply --simulate` then `assert --simulate` must converge (exit 0).
// For every kill of `apply --sysfs-root TREE` (setting, then clearing, VF types):
//   - every current_vgpu_type file must hold a whole type ID;
//   - re-running apply, then assert, must converge.
// Prints the figures and exits 1 if any check failed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout } from 'node:timers';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { kills: { type: 'string', default: '100' }, gpus: { type: 'string', default: '8' }, dir: { type: 'string', default: tmpdir() }, seed: { type: 'string', default: '1' } } });
const KILLS = Number(values.kills);
const repo = resolve(import.meta.dirname, '..');
const BIN = join(repo, JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).bin.vmgpu);
const work = mkdtempSync(join(values.dir, 'vmgpu-crash-soak-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// A small seeded generator, so a run can be repeated.
let seed = Number(values.seed) >>> 0 || 1;
const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);

const withState = (args) => (args[0] === 'sim' ? args : [...args, '--state-dir', join(work, 'state')]);
const vmgpu = (...args) => spawnSync(process.execPath, [BIN, ...withState(args)], { encoding: 'utf8' });
const must = (r, what) => {
  if (r.status !== 0) throw new Error(`${what}: exit ${r.status}\n${r.stderr}${r.stdout}`);
  return r;
};
const config = (name, body) => {
  const f = join(work, `${name}.yaml`);
  writeFileSync(f, `version: v1\nvgpu-configs:\n  ${name}:\n    - devices: all\n${body}`);
  return f;
};

/** Start a command, kill it with SIGKILL after `ms`; resolves to whether it was still running. */
function killAfter(args, ms) {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...withState(args)], { stdio: 'ignore' });
    let exited = false;
    child.on('exit', () => {
      exited = true;
      done(false);
    });
    setTimeout(() => {
      if (exited) return;
      child.removeAllListeners('exit');
      child.on('exit', () => done(true));
      child.kill('SIGKILL');
    }, ms);
  });
}

function timed(args) {
  const t0 = performance.now();
  must(vmgpu(...args), args.join(' '));
  return performance.now() - t0;
}

const layout = (inv) => inv.gpus.map((g) => [g.pci.address, g.vfs.map((v) => v.currentTypeId), g.mdevParents.flatMap((p) => p.instances.map((i) => i.uuid)).sort()]);
const figures = { simKills: 0, simKilledRunning: 0, toldHalfSaved: 0, consistentReads: 0, simConverged: 0, treeKills: 0, treeKilledRunning: 0, wholeValues: 0, treeConverged: 0, failures: [] };
const fail = (msg) => figures.failures.push(msg);

// ---------------------------------------------------------------- the simulated node
const sim = join(work, 'sim');
must(vmgpu('sim', 'create', '--out', sim, '--model', 'L40S', '--gpus', values.gpus), 'sim create');
const configs = [
  { name: 'a', file: config('a', '      vgpu-devices:\n        L40S-12Q: 4\n') },
  { name: 'b', file: config('b', '      vgpu-devices:\n        L40S-4Q: 12\n') },
];
const simMs = Math.max(timed(['apply', '--simulate', sim, '-f', configs[0].file, '-c', 'a']), timed(['apply', '--simulate', sim, '-f', configs[1].file, '-c', 'b']));
for (let i = 0; i < KILLS; i++) {
  const c = configs[i % 2];
  figures.simKills++;
  if (await killAfter(['apply', '--simulate', sim, '-f', c.file, '-c', c.name], random() * simMs * 1.2)) figures.simKilledRunning++;
  const read = vmgpu('discover', '--json', '--sysfs-root', sim);
  if (read.status === 5 && /half saved/.test(read.stderr)) figures.toldHalfSaved++;
  else if (read.status !== 0) fail(`kill ${i}: discover --sysfs-root exit ${read.status}: ${read.stderr}`);
  else {
    const truth = must(vmgpu('discover', '--json', '--simulate', sim), 'discover --simulate');
    if (JSON.stringify(layout(JSON.parse(read.stdout))) === JSON.stringify(layout(JSON.parse(truth.stdout)))) figures.consistentReads++;
    else fail(`kill ${i}: the tree and the state disagree and nothing said so`);
  }
  const again = vmgpu('apply', '--simulate', sim, '-f', c.file, '-c', c.name);
  const check = vmgpu('assert', '--simulate', sim, '-f', c.file, '-c', c.name);
  if (again.status === 0 && check.status === 0) figures.simConverged++;
  else fail(`kill ${i}: apply exit ${again.status}, assert exit ${check.status}: ${again.stdout}${again.stderr}`);
}

// ---------------------------------------------------------------- a plain tree
const tree = join(work, 'tree');
must(vmgpu('sim', 'create', '--out', tree, '--model', 'L40S', '--gpus', values.gpus), 'sim create (tree)');
const set = config('set', '      vgpu-devices:\n        L40S-12Q: 4\n');
const clear = config('clear', '      vgpu-devices: {}\n');
const treeConfigs = [
  { name: 'set', file: set },
  { name: 'clear', file: clear },
];
const treeMs = Math.max(timed(['apply', '--sysfs-root', tree, '-f', set, '-c', 'set']), timed(['apply', '--sysfs-root', tree, '-f', clear, '-c', 'clear']));
const typeFiles = () => {
  const devs = join(tree, 'sys/bus/pci/devices');
  return readdirSync(devs).flatMap((d) => {
    try {
      return [readFileSync(join(devs, d, 'nvidia/current_vgpu_type'), 'utf8')];
    } catch {
      return [];
    }
  });
};
for (let i = 0; i < KILLS; i++) {
  const c = treeConfigs[i % 2];
  figures.treeKills++;
  if (await killAfter(['apply', '--sysfs-root', tree, '-f', c.file, '-c', c.name], random() * treeMs * 1.2)) figures.treeKilledRunning++;
  const torn = typeFiles().filter((v) => !/^[0-9]+\n?$/.test(v));
  if (torn.length === 0) figures.wholeValues++;
  else fail(`tree kill ${i}: torn values ${JSON.stringify(torn.slice(0, 3))}`);
  const again = vmgpu('apply', '--sysfs-root', tree, '-f', c.file, '-c', c.name);
  const check = vmgpu('assert', '--sysfs-root', tree, '-f', c.file, '-c', c.name);
  if (again.status === 0 && check.status === 0) figures.treeConverged++;
  else fail(`tree kill ${i}: apply exit ${again.status}, assert exit ${check.status}: ${again.stdout}${again.stderr}`);
}

console.log(`seed ${values.seed}, ${values.gpus} x L40S`);
console.log(`apply --simulate: ${figures.simKills} SIGKILLs (${figures.simKilledRunning} while running; full apply ${simMs.toFixed(0)} ms); ${figures.toldHalfSaved} readers told "half saved", ${figures.consistentReads} read a consistent tree, ${figures.simConverged} converged`);
console.log(`apply --sysfs-root: ${figures.treeKills} SIGKILLs (${figures.treeKilledRunning} while running; full apply ${treeMs.toFixed(0)} ms); ${figures.wholeValues} left only whole values, ${figures.treeConverged} converged`);
for (const f of figures.failures.slice(0, 20)) console.log(`FAILED: ${f}`);
process.exitCode = figures.failures.length ? 1 : 0;
