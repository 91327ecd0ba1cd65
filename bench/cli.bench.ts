/**
 * CLI start-up benchmark (issue 13, item 6): the installed `vmgpu` (package.json
 * "bin": the esbuild bundle with one chunk per group of commands) against
 * `node -e 0` measured in the same run. Every round runs each command once,
 * in turn, so load from other work on the machine falls on all of them alike.
 *
 *   npm run build && node --import tsx bench/cli.bench.ts [--runs 21] [--dir /tmp]
 *
 * Wall time of a child process, median and p90:
 *   node -e 0                                      the baseline
 *   vmgpu --version                                goal: <= 1.5 x baseline
 *   vmgpu discover --sysfs-root TREE (8 x L40S)    goal: <= 2 x baseline + the inventory's own time
 *   vmgpu apply --simulate DIR (8 x L40S, no-op)   goal: <= 250 ms
 * The inventory's own time is what discover does beyond starting: opening the
 * machine (PCI IDs database, catalog cache) and the inventory of the tree, timed inside
 * a fresh process with the modules already loaded (cold, as discover pays it).
 * The unbundled build (dist/cli/main.js) is measured too, for comparison.
 * --dir picks where the trees go (default: the OS temp dir).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createSimulatedNode, materialize } from '../src/simulator/index.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '21' }, dir: { type: 'string', default: os.tmpdir() } } });
const RUNS = Math.max(5, Number(values.runs));
const repo = path.resolve(import.meta.dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { bin: { vmgpu: string } };
const BIN = path.join(repo, pkg.bin.vmgpu);
const TSC = path.join(repo, 'dist/cli/main.js');
for (const f of [BIN, TSC]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first`);

const work = fs.mkdtempSync(path.join(values.dir, 'vmgpu-cli-bench-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
const rep = (p: string, n: number) => Array.from({ length: n }, () => p);
const spec = { gpus: [{ model: 'L40S', count: 8, mode: 'sriov-vgpu' as const, profiles: rep('L40S-12Q', 4) }] };
const tree = path.join(work, 'tree');
const simDir = path.join(work, 'sim');
const state = path.join(work, 'state');
materialize(createSimulatedNode(spec), tree);
materialize(createSimulatedNode(spec), simDir);
const config = path.join(work, 'config.yaml');
fs.writeFileSync(config, 'version: v1\nvgpu-configs:\n  same:\n    - devices: all\n      vgpu-devices:\n        L40S-12Q: 4\n');

function run(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

/** What discover does beyond starting up, timed inside a fresh process (modules loaded first). */
const INVENTORY_PROBE = `
import { openMachine } from ${JSON.stringify(path.join(repo, 'dist/cli/context.js'))};
const t0 = performance.now();
await openMachine({ 'sysfs-root': ${JSON.stringify(tree)}, 'state-dir': ${JSON.stringify(state)} }).inventory();
process.stdout.write(String(performance.now() - t0));`;

function inventoryOwnTime(): number {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', INVENTORY_PROBE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`inventory probe failed: ${r.stderr}`);
  return Number(r.stdout);
}

const noop = (main: string) => {
  const r = spawnSync(process.execPath, [main, 'apply', '--simulate', simDir, '-f', config, '-c', 'same', '--state-dir', state], { encoding: 'utf8' });
  if (r.status !== 0 || !/No changes/.test(r.stdout)) throw new Error(`the apply is not a no-op: ${r.stdout}${r.stderr}`);
};
noop(BIN);

const cases: [string, () => number][] = [
  ['node -e 0', () => run(['-e', '0'])],
  ['vmgpu --version', () => run([BIN, '--version'])],
  ['vmgpu discover (8 x L40S tree)', () => run([BIN, 'discover', '--sysfs-root', tree, '--state-dir', state])],
  ['  inventory own time', inventoryOwnTime],
  ['vmgpu apply --simulate (no-op)', () => run([BIN, 'apply', '--simulate', simDir, '-f', config, '-c', 'same', '--state-dir', state])],
  ['unbundled --version', () => run([TSC, '--version'])],
  ['unbundled discover', () => run([TSC, 'discover', '--sysfs-root', tree, '--state-dir', state])],
  ['unbundled apply --simulate (no-op)', () => run([TSC, 'apply', '--simulate', simDir, '-f', config, '-c', 'same', '--state-dir', state])],
];
const samples = new Map(cases.map(([n]) => [n, [] as number[]]));
for (const [, f] of cases) f(); // warm the page cache
for (let i = 0; i < RUNS; i++) for (const [n, f] of cases) samples.get(n)!.push(f());

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const med = (n: string) => q(samples.get(n)!, 0.5);
console.log(`${RUNS} rounds; trees in ${values.dir}; vmgpu = ${path.relative(repo, BIN)}`);
console.log('command                                median ms    p90 ms   vs node -e 0');
const base = med('node -e 0');
for (const [n] of cases) console.log(`${n.padEnd(38)} ${med(n).toFixed(1).padStart(9)} ${q(samples.get(n)!, 0.9).toFixed(1).padStart(9)}   ${(med(n) / base).toFixed(2).padStart(6)}x`);

const goal = (ok: boolean) => (ok ? 'met' : 'MISSED');
const version = med('vmgpu --version');
const discover = med('vmgpu discover (8 x L40S tree)');
const own = med('  inventory own time');
const apply = med('vmgpu apply --simulate (no-op)');
console.log(`goal --version <= 1.5 x node -e 0: ${goal(version <= 1.5 * base)} (${(version / base).toFixed(2)}x)`);
console.log(`goal discover <= 2 x node -e 0 + inventory (${own.toFixed(1)} ms): ${goal(discover <= 2 * base + own)} (${((discover - own) / base).toFixed(2)}x + inventory)`);
console.log(`goal no-op apply --simulate on 8 GPUs <= 250 ms: ${goal(apply <= 250)} (${apply.toFixed(1)} ms)`);
