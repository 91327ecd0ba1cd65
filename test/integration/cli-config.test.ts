/**
 * End-to-end tests of `vmgpu validate-config | plan | apply | assert | export |
 * import cozystack` as a user runs them: the real CLI in a child process,
 * acting on a simulated node persisted with `vmgpu sim create` (--simulate DIR).
 *
 * "Nothing written" is shown twice: the CLI leaves the persisted node
 * byte-for-byte unchanged (and does not even rewrite it), and the same file
 * and config run through the planner and applier in this process against the
 * same node leave the simulator's write counter at zero.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApplyError, applyPlan } from '../../src/apply/apply.js';
import { acquireNodeLock, nodeLockPath } from '../../src/machine/lock.js';
import { openSimulated } from '../../src/machine/simulated.js';
import { planOn } from '../../src/machine/plan-on.js';
import type { Inventory } from '../../src/inventory/types.js';
import { isConfigError } from '../../src/spec/config.js';
import { loadConfigFile } from '../../src/spec/load.js';
import { loadSimulation, SIM_STATE_FILE } from '../../src/simulator/index.js';
import { nvidiaExampleYaml } from '../unit/spec/nvidia-example.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const ENGINE = path.join(ROOT, 'test/fixtures/configs/engine');
const FIXTURES = path.join(ROOT, 'test/fixtures/configs');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cli-config-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function vmgpu(...args: string[]): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, NODE_NAME: 'cli-test-node', VMGPU_STATE_DIR: path.join(TMP, 'state') },
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r;
}

let n = 0;
function simNode(...args: string[]): string {
  const dir = path.join(TMP, `sim-${n++}`);
  ok(vmgpu('sim', 'create', '--out', dir, ...args), 'sim create');
  return dir;
}

function discover(dir: string): Inventory {
  return JSON.parse(ok(vmgpu('discover', '--json', '--simulate', dir), 'discover').stdout) as Inventory;
}

/** GPU address -> its vGPUs as sorted profile names. */
function layout(inv: Inventory): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const g of inv.gpus) {
    const list = g.vfs.filter((v) => v.currentTypeId).map((v) => v.currentProfile ?? `id ${v.currentTypeId}`);
    for (const p of g.mdevParents) for (const i of p.instances) list.push((i.typeName ?? i.typeDir).replace(/^(NVIDIA|GRID) /, ''));
    out[g.pci.address] = list.sort();
  }
  return out;
}

function persisted(dir: string): { text: string; mtimeMs: number } {
  const p = path.join(dir, SIM_STATE_FILE);
  return { text: fs.readFileSync(p, 'utf8'), mtimeMs: fs.statSync(p).mtimeMs };
}

/** The planner + applier in this process on the persisted node: a refused config makes zero writes. */
async function writesInProcess(dir: string, file: string, name: string): Promise<number> {
  const sim = loadSimulation(dir);
  const machine = openSimulated(sim);
  let cfg;
  try {
    cfg = loadConfigFile(file);
  } catch (err) {
    if (isConfigError(err)) return sim.writes();
    throw err;
  }
  try {
    const { plan } = await planOn(machine, { file: cfg, name, nodeId: 'cli-test-node' });
    await assert.rejects(applyPlan(plan, { port: machine.port, tools: machine.tools }), ApplyError);
  } catch (err) {
    if (!(err instanceof Error && /no config named/.test(err.message))) throw err;
  }
  return sim.writes();
}

const EVERY_MODEL = ['--model', 'L4,L40,L40S,RTX6000-Ada,H100,H100-SXM,H200,A100,A100-40GB,A10,A16,T4', '--gpus', '1', '--mode', 'sriov-vgpu,sriov-vgpu,sriov-vgpu,sriov-vgpu,sriov-vgpu,sriov-vgpu,sriov-vgpu,mdev-vgpu,mdev-vgpu,mdev-vgpu,mdev-vgpu,mdev-vgpu'];

void test('every model and mode: apply, assert, re-apply is a no-op, switch modes and back', async () => {
  const dir = simNode(...EVERY_MODEL);
  const f = path.join(ENGINE, 'every-model.yaml');
  ok(vmgpu('validate-config', '-f', f), 'validate-config');
  assert.equal(vmgpu('assert', '--simulate', dir, '-f', f, '-c', 'vgpu').code, 3, 'a fresh node does not match');
  const planned = ok(vmgpu('plan', '--simulate', dir, '-f', f, '-c', 'vgpu', '--json'), 'plan');
  const plan = JSON.parse(planned.stdout) as { actions: unknown[]; errors: unknown[] };
  assert.deepEqual(plan.errors, []);
  assert.ok(plan.actions.length >= 12);

  ok(vmgpu('apply', '--simulate', dir, '-f', f, '-c', 'vgpu'), 'apply vgpu');
  ok(vmgpu('assert', '--simulate', dir, '-f', f, '-c', 'vgpu'), 'assert vgpu');
  // By PCI device ID, as the config selects them.
  const want: Record<string, [string, number]> = {
    '27b8': ['L4-2Q', 4], '26b5': ['L40-4Q', 4], '26b9': ['L40S-12Q', 4], '26b1': ['RTX6000-Ada-8Q', 3], '2331': ['H100-1-10C', 2], '2330': ['H100XM-8C', 4], '2335': ['H200X-1-18C', 3],
    '20b5': ['A100D-10C', 4], '20f1': ['A100-1-5C', 3], '2236': ['A10-2Q', 6], '25b6': ['A16-4Q', 2], '1eb8': ['T4-4Q', 4],
  };
  const inv = discover(dir);
  assert.equal(inv.gpus.length, 12);
  for (const g of inv.gpus) {
    const w = want[g.pci.deviceId.replace(/^0x/, '')];
    assert.ok(w, `unexpected GPU ${g.pci.deviceId}`);
    assert.deepEqual(layout(inv)[g.pci.address], Array.from({ length: w[1] }, () => w[0]), `${g.model.name} ${g.pci.address}`);
  }
  const before = persisted(dir).text;
  const again = ok(vmgpu('apply', '--simulate', dir, '-f', f, '-c', 'vgpu'), 're-apply');
  assert.match(again.stdout, /No changes: the node already matches/);
  assert.equal(persisted(dir).text, before, 'a re-apply changed the node');

  for (const c of ['passthrough', 'half', 'vgpu']) {
    ok(vmgpu('apply', '--simulate', dir, '-f', f, '-c', c), `apply ${c}`);
    ok(vmgpu('assert', '--simulate', dir, '-f', f, '-c', c), `assert ${c}`);
  }
  const inv2 = discover(dir);
  assert.deepEqual(layout(inv2), layout(inv), 'back to the same vGPUs after passthrough, host and mixed modes');
  // mdev UUIDs are derived from node, parent and slot: the same after a round trip through other modes.
  const uuids = (i: Inventory) => i.gpus.flatMap((g) => g.mdevParents.flatMap((p) => p.instances.map((x) => x.uuid))).sort();
  assert.deepEqual(uuids(inv2), uuids(inv));
});

void test("NVIDIA vgpu-device-manager's own example files apply unchanged", () => {
  const dir = simNode('--model', 'L40S,A100-40GB', '--gpus', '2,1', '--mode', 'sriov-vgpu,mdev-vgpu');
  const f = path.join(FIXTURES, 'nvidia-example-style.yaml');
  ok(vmgpu('validate-config', '-f', f), 'validate-config');
  ok(vmgpu('apply', '--simulate', dir, '-f', f, '-c', 'default'), 'apply default');
  ok(vmgpu('assert', '--simulate', dir, '-f', f, '-c', 'default'), 'assert default');
  const l = Object.values(layout(discover(dir)));
  assert.deepEqual(l.map((x) => x.join(',')).sort(), ['A100-4C,A100-4C,A100-4C,A100-4C,A100-4C,A100-4C,A100-4C,A100-4C,A100-4C,A100-4C', 'L40S-24Q,L40S-24Q', 'L40S-24Q,L40S-24Q']);
  // Switching to another named config of the same file, as the device manager's label does;
  // this one selects only the A100 40GB by device-filter and leaves the L40S cards as they are.
  ok(vmgpu('apply', '--simulate', dir, '-f', f, '-c', 'A100-1-5C'), 'apply A100-1-5C');
  ok(vmgpu('assert', '--simulate', dir, '-f', f, '-c', 'A100-1-5C'), 'assert A100-1-5C');
  const l2 = Object.values(layout(discover(dir)));
  assert.deepEqual(l2.map((x) => x.join(',')).sort(), ['A100-1-5C,A100-1-5C,A100-1-5C,A100-1-5C,A100-1-5C,A100-1-5C,A100-1-5C', 'L40S-24Q,L40S-24Q', 'L40S-24Q,L40S-24Q']);

  const l4 = simNode('--model', 'L4', '--gpus', '2');
  const r = path.join(FIXTURES, 'nvidia-readme-style.yaml');
  for (const c of ['L4-small', 'L4-large', 'L4-4Q']) {
    ok(vmgpu('apply', '--simulate', l4, '-f', r, '-c', c), `apply ${c}`);
    ok(vmgpu('assert', '--simulate', l4, '-f', r, '-c', c), `assert ${c}`);
  }
  assert.deepEqual(Object.values(layout(discover(l4))).map((x) => x.length), [6, 6]);
});

void test('export of a configured node, applied to a fresh node, gives the same layout', () => {
  const args = ['--model', 'L40S,A100,T4', '--gpus', '2,1,1', '--mode', 'sriov-vgpu,mdev-vgpu,mdev-vgpu'];
  const a = simNode(...args);
  const cfg = path.join(TMP, 'mixed.yaml');
  fs.writeFileSync(
    cfg,
    'version: v1\nvgpu-configs:\n  m:\n    - devices: [0]\n      mixed-sizes: true\n      vgpu-devices:\n        L40S-12Q: 2\n        L40S-4Q: 5\n    - devices: [1]\n      mode: passthrough\n    - device-filter: "0x20B510DE"\n      devices: all\n      vgpu-devices:\n        A100D-20C: 3\n    - device-filter: "0x1EB810DE"\n      devices: all\n      vgpu-devices:\n        T4-8C: 2\n',
  );
  ok(vmgpu('apply', '--simulate', a, '-f', cfg, '-c', 'm'), 'apply on A');
  const exported = ok(vmgpu('export', '--simulate', a, '--name', 'copy'), 'export').stdout;
  const out = path.join(TMP, 'exported.yaml');
  fs.writeFileSync(out, exported);
  ok(vmgpu('validate-config', '-f', out), 'validate the export');
  ok(vmgpu('assert', '--simulate', a, '-f', out, '-c', 'copy'), 'the export matches its own node');
  const b = simNode(...args);
  ok(vmgpu('apply', '--simulate', b, '-f', out, '-c', 'copy'), 'apply the export on B');
  const la = discover(a);
  const lb = discover(b);
  assert.deepEqual(layout(lb), layout(la));
  assert.deepEqual(lb.gpus.map((g) => g.framework), la.gpus.map((g) => g.framework));
  assert.deepEqual(lb.gpus.map((g) => g.heterogeneousMode), la.gpus.map((g) => g.heterogeneousMode));
});

void test('import cozystack: profile IDs from the node catalog become names; the result applies and matches', () => {
  const dir = simNode('--model', 'L40S', '--gpus', '2');
  const inv = discover(dir);
  const id = (profile: string) => {
    const t = inv.gpus[0]!.catalog.find((c) => c.profile === profile);
    assert.ok(t, `the catalog of ${inv.gpus[0]!.pci.address} lists ${profile}`);
    return t.id;
  };
  const [g0, g1] = inv.gpus.map((g) => g.pci.sriov!.vfs);
  const text = [
    '# <bus-id>=<profile-id>, as the vgpu-profile-loader reads it',
    `${g0![0]}=${id('L40S-24Q')}`,
    `  ${g0![1]} = ${id('L40S-24Q')}   # trailing comment`,
    `${g1![1]}=${id('L40S-12Q')}`,
    `${g1![3]}=${id('L40S-12Q')}`,
    `${g0![2]}=0`,
    '',
  ].join('\n');
  const src = path.join(TMP, 'profiles.txt');
  fs.writeFileSync(src, text);
  const imported = ok(vmgpu('import', 'cozystack', src, '--simulate', dir, '--name', 'from-cozystack'), 'import').stdout;
  const out = path.join(TMP, 'imported.yaml');
  fs.writeFileSync(out, imported);
  ok(vmgpu('validate-config', '-f', out), 'validate the import');
  ok(vmgpu('apply', '--simulate', dir, '-f', out, '-c', 'from-cozystack'), 'apply the import');
  ok(vmgpu('assert', '--simulate', dir, '-f', out, '-c', 'from-cozystack'), 'assert the import');
  const after = discover(dir);
  const at = (gi: number) => Object.fromEntries(after.gpus[gi]!.vfs.filter((v) => v.currentTypeId).map((v) => [v.index, v.currentProfile]));
  assert.deepEqual(at(0), { 0: 'L40S-24Q', 1: 'L40S-24Q' });
  assert.deepEqual(at(1), { 1: 'L40S-12Q', 3: 'L40S-12Q' }, 'the VFs the loader used are kept (vf-placement)');

  // An ID that is not a type of this card: exit 2 with the IDs that are.
  fs.writeFileSync(src, `${g0![0]}=99999\n`);
  const bad = vmgpu('import', 'cozystack', src, '--simulate', dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /profile ID 99999 is not a vGPU type of L40S .*known: \d+=L40S-/);
});

void test('a full card whose vGPU types no source names (no nvidia-smi, no catalog): nothing changes, and every command says so', () => {
  // Seed 001's layout: 2 x L40S, each full with 2 x L40S-24Q; the container has no nvidia-smi.
  const dir = simNode('--model', 'L40S', '--gpus', '2', '--profiles', 'L40S-24Q,L40S-24Q', '--no-nvidia-smi');
  // A catalog cache of its own, cold (the other tests' cache knows these IDs).
  const state = ['--state-dir', path.join(TMP, 'cold-state')];
  const cfg = path.join(TMP, 'l40s-24q.yaml');
  fs.writeFileSync(cfg, 'version: v1\nvgpu-configs:\n  l40s-24q:\n    - devices: all\n      vgpu-devices:\n        L40S-24Q: 2\n');
  const before = persisted(dir);
  const plan = ok(vmgpu('plan', '--simulate', dir, '-f', cfg, '-c', 'l40s-24q', ...state), 'plan');
  assert.doesNotMatch(plan.stdout, /clear VF/, 'no vGPU is planned away');
  assert.match(plan.stdout, /vmgpu cannot tell what is on 2 GPU\(s\)/);
  assert.match(plan.stdout, /holds vGPU type ID \d+, which vmgpu cannot name/);
  assert.match(plan.stdout, /To fix: make the host driver's nvidia-smi reachable/);
  const a = vmgpu('assert', '--simulate', dir, '-f', cfg, '-c', 'l40s-24q', ...state);
  assert.equal(a.code, 6, `assert cannot know: exit 6, not a mismatch\n${a.stdout}${a.stderr}`);
  assert.match(a.stdout, /cannot tell whether the node matches config l40s-24q/);
  const apply = vmgpu('apply', '--simulate', dir, '-f', cfg, '-c', 'l40s-24q', ...state);
  assert.equal(apply.code, 6, apply.stdout + apply.stderr);
  assert.equal(persisted(dir).text, before.text, 'apply changed the node');
  // The loader's own file for that layout: the IDs cannot be named here, which is not bad input.
  const ids = discover(dir).gpus.flatMap((g) => g.vfs.filter((v) => v.currentTypeId).map((v) => `${v.address}=${v.currentTypeId}`));
  const src = path.join(TMP, 'seed-001-profiles.txt');
  fs.writeFileSync(src, ids.join('\n') + '\n');
  const imp = vmgpu('import', 'cozystack', src, '--simulate', dir, ...state);
  assert.equal(imp.code, 6, imp.stderr);
  assert.doesNotMatch(imp.stderr, /is not a vGPU type/);
  assert.match(imp.stderr, /cannot name profile ID \d+/);
});

void test('one writer per node: apply waits for, or is refused by, another writer holding the node lock', async () => {
  const dir = simNode('--model', 'L40S');
  const cfg = path.join(TMP, 'lock.yaml');
  fs.writeFileSync(cfg, 'version: v1\nvgpu-configs:\n  c:\n    - devices: all\n      vgpu-devices:\n        L40S-12Q: 4\n');
  const before = persisted(dir);
  // Another writer (an agent, an admin's apply) holds the node.
  const other = await acquireNodeLock(nodeLockPath({ simulateDir: dir }), { command: 'vmgpu agent', waitMs: 0 });
  const refused = vmgpu('apply', '--simulate', dir, '-f', cfg, '-c', 'c', '--wait', '0');
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`the node is being changed by vmgpu agent \\(PID ${process.pid}`));
  assert.equal(persisted(dir).text, before.text, 'a refused apply changed the node');
  other.release();
  ok(vmgpu('apply', '--simulate', dir, '-f', cfg, '-c', 'c', '--wait', '0'), 'apply once the lock is free');
});

interface BadCase {
  name: string;
  args: (dir: string) => string[];
  /** Text the message must contain (what, where, and how to fix). */
  message: RegExp;
  /** For the in-process zero-write check. */
  file?: string;
  config?: string;
  node?: 'default' | 'no-iommu';
}

const errs = path.join(ENGINE, 'errors.yaml');
const onErrs = (c: string, message: RegExp): BadCase => ({ name: c, args: (d) => ['apply', '--simulate', d, '-f', errs, '-c', c], message, file: errs, config: c });

const badCases: BadCase[] = [
  onErrs('unknown-profile', /errors\.yaml:7:\d+: vgpu-configs\.unknown-profile\[0\]: L40S-13Q is not a vGPU profile of L40S \(0000:18:00\.0\)\. Did you mean "L40S-12Q" or "L40S-16Q"\?/),
  onErrs('over-capacity', /errors\.yaml:11:\d+: .*3 x L40S-24Q needs 72 GB of framebuffer; L40S \(0000:18:00\.0\) has 48 GB/),
  onErrs('mixed-without-flag', /errors\.yaml:16:\d+: .*mixing L40S-12Q and L40S-4Q on 0000:18:00\.0 needs mixed-size vGPU mode, which is off: add `mixed-sizes: true` to this entry/),
  onErrs('index-out-of-range', /errors\.yaml:22:\d+: .*index 7 is out of range: this node has 3 NVIDIA GPUs? \(indices 0-2/),
  onErrs('filter-matches-nothing', /errors\.yaml:26:\d+: .*selects no GPU on this node .*0000:18:00\.0 \(10de:26b9.*check device-filter, devices and pci-addresses/),
  onErrs('selected-twice', /errors\.yaml:3[1-5]:\d+: .*0000:18:00\.0.*line 31.*one entry/),
  onErrs('mdev-two-types', /A100 80GB PCIe \(0000:3b:00\.0\) takes one vGPU type per GPU; requested A100D-10C and A100D-20C/),
  onErrs('placement-out-of-range', /vf-placement: VF index 40 is out of range; L40S has VFs 0-31/),
  {
    name: 'config name that does not exist',
    args: (d) => ['apply', '--simulate', d, '-f', errs, '-c', 'overcapacity'],
    message: /no config named "overcapacity"\. Did you mean "over-capacity"\? Available: unknown-profile, over-capacity/,
    file: errs,
    config: 'overcapacity',
  },
  {
    name: 'time-sliced and MIG-backed on one GPU',
    args: (d) => ['apply', '--simulate', d, '-f', path.join(ENGINE, 'timesliced-and-mig.yaml'), '-c', 'both'],
    message: /timesliced-and-mig\.yaml:\d+:\d+: .*cannot mix time-sliced \(A100D-4C\) and MIG-backed \(A100D-1-10C\)/,
    file: path.join(ENGINE, 'timesliced-and-mig.yaml'),
    config: 'both',
  },
  {
    name: 'malformed YAML',
    args: (d) => ['apply', '--simulate', d, '-f', path.join(ENGINE, 'malformed.yaml'), '-c', 'broken'],
    message: /malformed\.yaml:\d+:\d+/,
    file: path.join(ENGINE, 'malformed.yaml'),
    config: 'broken',
  },
  {
    name: 'passthrough without an IOMMU',
    node: 'no-iommu',
    args: (d) => ['apply', '--simulate', d, '-f', path.join(ENGINE, 'passthrough.yaml'), '-c', 'all'],
    message: /passthrough\.yaml:4:\d+: .*cannot be passed through: the IOMMU is off .*intel_iommu=on/,
    file: path.join(ENGINE, 'passthrough.yaml'),
    config: 'all',
  },
  {
    name: 'cozystack bus IDs with path characters',
    args: (d) => ['import', 'cozystack', path.join(ENGINE, 'cozystack-path-chars.txt'), '--simulate', d],
    message: /cozystack-path-chars\.txt:2:1: "0000:18:00\.4\/\.\.\/\.\.\/\.\.\/\.\.\/etc" is not a PCI bus ID.*\n.*cozystack-path-chars\.txt:3:1: "\.\.\/0000:18:00\.5" is not a PCI bus ID/,
  },
];

void test('bad input: exit 2, a message with file:line and the fix, and nothing written', async () => {
  const nodes = {
    default: simNode('--model', 'L40S,A100', '--gpus', '2,1', '--mode', 'sriov-vgpu,mdev-vgpu'),
    'no-iommu': simNode('--model', 'L40S', '--no-iommu'),
  };
  // Configured first, so that a stray write would have something to destroy.
  ok(vmgpu('apply', '--simulate', nodes.default, '-f', errs, '-c', 'good'), 'apply good');
  for (const c of badCases) {
    const dir = nodes[c.node ?? 'default'];
    const before = persisted(dir);
    for (const cmd of c.args(dir)[0] === 'apply' ? ['plan', 'apply', 'assert'] : [c.args(dir)[0]!]) {
      const args = [cmd, ...c.args(dir).slice(1)];
      const r = vmgpu(...args);
      assert.equal(r.code, 2, `${c.name} (${cmd}): exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, c.message, `${c.name} (${cmd}): message`);
      assert.equal(r.stdout, '', `${c.name} (${cmd}): nothing on stdout`);
      const after = persisted(dir);
      assert.equal(after.text, before.text, `${c.name} (${cmd}): the node changed`);
      assert.equal(after.mtimeMs, before.mtimeMs, `${c.name} (${cmd}): the node was saved`);
    }
    if (c.file && c.config) assert.equal(await writesInProcess(dir, c.file, c.config), 0, `${c.name}: writes in process`);
  }
  // validate-config without hardware: the file-level problems are caught too.
  for (const [f, re] of [
    ['malformed.yaml', /malformed\.yaml:\d+:\d+/],
    ['timesliced-and-mig.yaml', /cannot mix time-sliced/],
  ] as const) {
    const r = vmgpu('validate-config', '-f', path.join(ENGINE, f));
    assert.equal(r.code, 2, f);
    assert.match(r.stderr, re);
  }
  const unknown = vmgpu('validate-config', '-f', errs, '-c', 'unknown-profile');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /errors\.yaml:7:\d+: vgpu-configs\.unknown-profile\[0\]: L40S-13Q is not a vGPU profile of L40S\. Did you mean/);
  assert.equal(vmgpu('validate-config', '-f', errs, '-c', 'nope').code, 2);
  // What plan refuses on every node, validate-config refuses without one; what depends on the node it leaves.
  const all = vmgpu('validate-config', '-f', errs);
  assert.equal(all.code, 2);
  for (const c of ['unknown-profile', 'over-capacity', 'selected-twice', 'mdev-two-types']) assert.match(all.stderr, new RegExp(`vgpu-configs\\.${c}\\[`), c);
  for (const c of ['mixed-without-flag', 'index-out-of-range', 'filter-matches-nothing', 'placement-out-of-range', 'good']) assert.doesNotMatch(all.stderr, new RegExp(`vgpu-configs\\.${c}\\[`), c);
});

void test("validate-config takes NVIDIA's own example config (vgpu-device-manager v0.5.0) unchanged", () => {
  const f = path.join(TMP, 'nvidia-config-example.yaml');
  fs.writeFileSync(f, nvidiaExampleYaml());
  const r = ok(vmgpu('validate-config', '-f', f), 'validate-config');
  assert.match(r.stdout, /valid \(711 config\(s\)\)/);
  assert.match(r.stdout, /note: not checked, vmgpu has no profile facts for their boards/);
  ok(vmgpu('validate-config', '-f', f, '-c', 'default'), 'validate-config -c default');
});

void test('exit codes: 3 mismatch, 4 blocked by a VM, 5 no sysfs, 1 runtime failure', () => {
  const dir = simNode('--model', 'L40S', '--profiles', 'L40S-12Q,L40S-12Q');
  const cfg = path.join(TMP, 'c24.yaml');
  fs.writeFileSync(cfg, 'version: v1\nvgpu-configs:\n  big:\n    - devices: all\n      vgpu-devices:\n        L40S-24Q: 2\n');
  const mismatch = vmgpu('assert', '--simulate', dir, '-f', cfg, '-c', 'big');
  assert.equal(mismatch.code, 3);
  assert.match(mismatch.stdout, /node does not match config big:\n\s+needs: clear VF 0000:18:00\.4/);

  const vf0 = discover(dir).gpus[0]!.vfs[0]!.address;
  ok(vmgpu('sim', 'hold', dir, vf0), 'sim hold');
  const blocked = vmgpu('apply', '--simulate', dir, '-f', cfg, '-c', 'big');
  assert.equal(blocked.code, 4, blocked.stderr + blocked.stdout);
  assert.match(blocked.stdout, /blocked by devices in use; run apply again once they are released/);
  assert.match(blocked.stdout, new RegExp(`clear VF ${vf0.replace(/\./g, '\\.')} \\(virtfn0, L40S-12Q\\): in use: process [0-9]+ \\(qemu-system-x86_64\\) has /dev/vfio/\\S+ open`));
  const vfs = discover(dir).gpus[0]!.vfs;
  assert.equal(vfs[0]!.currentProfile, 'L40S-12Q', 'the held VF is untouched');
  assert.equal(vmgpu('assert', '--simulate', dir, '-f', cfg, '-c', 'big').code, 3, 'still blocked: no match');
  ok(vmgpu('sim', 'release', dir, vf0), 'sim release');
  ok(vmgpu('apply', '--simulate', dir, '-f', cfg, '-c', 'big'), 'apply once released');
  ok(vmgpu('assert', '--simulate', dir, '-f', cfg, '-c', 'big'), 'assert once released');

  const none = vmgpu('plan', '--sysfs-root', path.join(TMP, 'does-not-exist'), '-f', cfg, '-c', 'big');
  assert.equal(none.code, 5, none.stderr);

  // A materialised tree is plain files: a write to an mdev type's `create` lands in a file but no driver
  // creates the device, so the read-back check fails: exit 1, naming the GPU, the step and the reason.
  const tree = simNode('--model', 'T4', '--mode', 'mdev-vgpu');
  const t4 = path.join(TMP, 't4.yaml');
  fs.writeFileSync(t4, 'version: v1\nvgpu-configs:\n  t:\n    - devices: all\n      vgpu-devices:\n        T4-4Q: 2\n');
  const fail = vmgpu('apply', '--sysfs-root', tree, '-f', t4, '-c', 't');
  assert.equal(fail.code, 1, fail.stderr + fail.stdout);
  assert.match(fail.stdout, /FAILED: 0000:18:00\.0: create mdev [0-9a-f-]{36} \(T4-4Q\) on 0000:18:00\.0: read-back check failed: mdev [0-9a-f-]{36} does not exist after create/);
});
