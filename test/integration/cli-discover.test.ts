/**
 * `vmgpu discover`, `vmgpu sim ...` end to end: the built command on
 * materialised simulator trees and on the real H200 capture, including its
 * exit codes and error messages.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Inventory } from '../../src/inventory/types.js';
import { assertCleanError, requireBuiltCli, vmgpu, vmgpuSlowPipe } from './vmgpu-cli.js';

const FIXTURE = path.resolve('test/fixtures/real-h200-vm');
let work = '';
let tree = '';
let state = '';

before(() => {
  requireBuiltCli();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cli-'));
  tree = path.join(work, 'node');
  state = path.join(work, 'state');
  const r = vmgpu(['sim', 'create', '--out', tree, '--model', 'L40S,RTX6000-Ada,T4', '--gpus', '2,1,1', '--mode', 'sriov-vgpu,passthrough,mdev-vgpu', '--profiles', 'L40S-12Q,L40S-12Q,L40S-12Q']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /simulated node written to .*: 4 GPU\(s\)/);
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

void test('discover prints a table: GPU, model, framework, vGPUs by profile with free VFs, NUMA, IOMMU group', () => {
  const r = vmgpu(['discover', '--sysfs-root', tree, '--state-dir', state]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.match(lines[0]!, /IOMMU on; NVIDIA driver 595\.58\.02 \(vGPU manager\); mdev bus present/);
  const header = lines.find((l) => l.startsWith('GPU '))!;
  for (const col of ['ADDRESS', 'MODEL', 'FRAMEWORK', 'DRIVER', 'VGPUS', 'NUMA', 'IOMMU']) assert.ok(header.includes(col), col);
  const rows = lines.filter((l) => /^[0-9]+\s+0000:/.test(l));
  assert.equal(rows.length, 4);
  // Both L40S were configured with the --profiles (the first model group), three 12Q each.
  const l40s = rows.filter((l) => /\bL40S\b/.test(l));
  assert.equal(l40s.length, 2);
  for (const row of l40s) {
    assert.match(row, /SR-IOV vGPU/);
    assert.match(row, /L40S-12Q x3, 29\/32 VFs free/);
  }
  assert.match(rows.find((l) => l.includes('RTX 6000 Ada'))!, /passthrough\s+vfio-pci\s+whole GPU \+ 1 companion function\(s\)/);
  assert.match(rows.find((l) => /\bT4\b/.test(l))!, /mdev vGPU\s+nvidia\s+no vGPUs/);
  assert.ok(!/\b10de:[0-9a-f]{4}\b/.test(r.stdout), 'no bare hex model IDs');
  // NUMA column: the first half of the GPUs on node 0, the rest on node 1; IOMMU groups are numbers.
  for (const row of rows) assert.match(row, /\s[01]\s+[0-9]+\s*$/);
});

void test('discover --json is the documented inventory document', () => {
  const r = vmgpu(['discover', '--json', '--sysfs-root', tree, '--state-dir', state]);
  assert.equal(r.code, 0, r.stderr);
  const inv = JSON.parse(r.stdout) as Inventory;
  assert.equal(inv.schemaVersion, 1);
  assert.match(inv.source, /directory tree at .*node\/sys/);
  assert.deepEqual(Object.keys(inv).sort(), ['gpus', 'node', 'otherFunctions', 'schemaVersion', 'source', 'warnings']);
  assert.deepEqual(inv.gpus.map((g) => [g.model.name, g.framework]), [
    ['L40S', 'sriov-vgpu'],
    ['L40S', 'sriov-vgpu'],
    ['RTX 6000 Ada Generation', 'passthrough'],
    ['T4', 'mdev-vgpu'],
  ]);
  const vf = inv.gpus[0]!.vfs[0]!;
  assert.equal(vf.currentProfile, 'L40S-12Q');
  assert.ok(vf.currentTypeId > 0);
  assert.equal(inv.gpus[2]!.companions.length, 1);
  assert.equal(inv.otherFunctions.length, 1);
  assert.equal(inv.node.nvidiaDriverVersion, '595.58.02');
  assert.deepEqual(inv.warnings, []);
});

void test('discover on the real H200 capture: H200, host driver, containers yes, passthrough no (IOMMU off), vGPU no', () => {
  const table = vmgpu(['discover', '--sysfs-root', path.join(FIXTURE, 'sys'), '--state-dir', state]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /IOMMU off/);
  assert.match(table.stdout, /^0\s+0000:00:06\.0\s+H200\s+host driver\s+nvidia\s+-\s+-\s+-\s*$/m);
  assert.match(table.stdout, /containers yes, passthrough no, vGPU no/);
  assert.match(table.stdout, /passthrough: the IOMMU is off/);
  const json = vmgpu(['discover', '--json', '--sysfs-root', FIXTURE, '--state-dir', state]);
  assert.equal(json.code, 0, json.stderr);
  const inv = JSON.parse(json.stdout) as Inventory;
  assert.equal(inv.gpus.length, 1);
  assert.equal(inv.gpus[0]!.model.name, 'H200');
  assert.equal(inv.gpus[0]!.framework, 'host-driver');
  assert.equal(inv.gpus[0]!.capabilities.containers.usable, true);
  assert.equal(inv.gpus[0]!.capabilities.passthrough.usable, false);
  assert.equal(inv.gpus[0]!.capabilities.vgpu.usable, false);
  assert.equal(inv.node.iommuEnabled, false);
});

void test('exit code 5 with one line for a missing root, a tree without sysfs, or a missing archive', () => {
  const missing = vmgpu(['discover', '--sysfs-root', path.join(work, 'nope')]);
  assert.equal(missing.code, 5);
  assert.match(assertCleanError(missing), /--sysfs-root .*nope: no such directory/);
  const notSysfs = path.join(work, 'empty');
  fs.mkdirSync(notSysfs);
  const empty = vmgpu(['discover', '--sysfs-root', notSysfs]);
  assert.equal(empty.code, 5);
  assert.match(assertCleanError(empty), /no PCI devices directory at .*empty\/bus\/pci\/devices/);
  const archive = vmgpu(['discover', '--sysfs-root', path.join(work, 'nope.tar.gz')]);
  assert.equal(archive.code, 5);
  assert.match(assertCleanError(archive), /no such capture archive/);
  assert.equal(missing.stdout + empty.stdout + archive.stdout, '', 'nothing on stdout');
});

void test('exit code 2 with a clear message for bad flags, bad addresses and bad simulator arguments', () => {
  const cases: [string[], RegExp][] = [
    [['discover', '--bogus'], /Unknown option '--bogus'/],
    [['discover', '--sysfs-root'], /--sysfs-root/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['sim', 'hold', tree, '0000:zz:00.0'], /invalid PCI address "0000:zz:00\.0"/],
    [['sim', 'hold', tree, '../../etc/passwd'], /invalid PCI address/],
    [['sim', 'hold', tree], /usage: vmgpu sim hold DIR ADDRESS\|UUID/],
    [['sim', 'create', '--out', path.join(work, 'x'), '--model', 'GTX1080'], /unknown simulated GPU model "GTX1080"/],
    [['sim', 'create', '--out', path.join(work, 'x'), '--mode', 'magic'], /--mode magic: choose one of/],
    [['sim', 'create', '--out', path.join(work, 'x'), '--gpus', '0'], /--gpus 0/],
    [['sim', 'create', '--out', path.join(work, 'x'), '--model', 'T4', '--mode', 'sriov-vgpu'], /uses mdev vGPU/],
    [['sim', 'create', '--out', path.join(work, 'x'), '--profiles', 'L40S-48Q,L40S-48Q'], /does not fit/],
    [['sim', 'create'], /needs --out DIR/],
    [['capture', '--out', path.join(work, 'x.zip')], /capture needs --out FILE\.tar\.gz/],
    [['discover', '--simulate', tree, '--sysfs-root', tree], /mutually exclusive/],
  ];
  for (const [args, msg] of cases) {
    const r = vmgpu(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    assert.match(assertCleanError(r), msg, args.join(' '));
  }
  assert.equal(fs.existsSync(path.join(work, 'x')), false, 'a rejected sim create writes nothing');
});

void test('sim models lists every model and driver version; sim hold/release persist in the tree', () => {
  const models = vmgpu(['sim', 'models']);
  assert.equal(models.code, 0);
  for (const key of ['L4', 'L40', 'L40S', 'RTX6000-Ada', 'H100', 'H100-SXM', 'H200', 'A100', 'A100-40GB', 'A10', 'A16', 'T4']) {
    assert.match(models.stdout, new RegExp(`^${key}\\s+10de:[0-9a-f]{4}\\s+(SR-IOV|mdev) vGPU`, 'm'), key);
  }
  assert.match(models.stdout, /595\.58\.02 \(rejects trailing newline\)/);
  const dir = path.join(work, 'hold');
  assert.equal(vmgpu(['sim', 'create', '--out', dir, '--model', 'L4', '--profiles', 'L4-6Q']).code, 0);
  const inv = JSON.parse(vmgpu(['discover', '--json', '--simulate', dir, '--state-dir', state]).stdout) as Inventory;
  const vf = inv.gpus[0]!.vfs[0]!.address;
  const hold = vmgpu(['sim', 'hold', dir, vf.toUpperCase()]);
  assert.equal(hold.code, 0, hold.stderr);
  assert.match(hold.stdout, new RegExp(`${vf} is now held`));
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'vmgpu-sim.json'), 'utf8')) as { held: string[] };
  assert.deepEqual(saved.held, [vf]);
  assert.equal(vmgpu(['sim', 'release', dir, vf]).code, 0);
  assert.deepEqual((JSON.parse(fs.readFileSync(path.join(dir, 'vmgpu-sim.json'), 'utf8')) as { held: string[] }).held, []);
  // A simulated node can also be created without an IOMMU and on another driver version.
  const noio = path.join(work, 'noio');
  assert.equal(vmgpu(['sim', 'create', '--out', noio, '--model', 'H200', '--mode', 'host', '--no-iommu', '--driver-version', '550.127.06']).code, 0);
  const t = vmgpu(['discover', '--sysfs-root', noio, '--state-dir', state]);
  assert.match(t.stdout, /IOMMU off; NVIDIA driver 550\.127\.06;/);
});

void test('--help and --version answer without touching sysfs', () => {
  const help = vmgpu(['--help']);
  assert.equal(help.code, 0);
  for (const c of ['discover', 'capture', 'sim create', 'sim models', 'sim hold', 'sim release']) assert.ok(help.stdout.includes(c), c);
  assert.match(help.stdout, /Exit codes: 0 ok.*5 no sysfs/);
  const sub = vmgpu(['discover', '--help']);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /usage: vmgpu discover/);
  assert.match(vmgpu(['--version']).stdout.trim(), /^[0-9]+\.[0-9]+\.[0-9]+/);
  assert.equal(vmgpu([]).code, 2, 'no command is a usage error');
});

void test('discover --json writes the whole document to a pipe, even when the reader is slow (`vmgpu discover --json | jq`)', () => {
  const big = path.join(work, 'big');
  assert.equal(vmgpu(['sim', 'create', '--out', big, '--model', 'L40S', '--gpus', '4']).code, 0);
  const expected = vmgpu(['discover', '--json', '--sysfs-root', big, '--state-dir', state]).stdout;
  assert.ok(expected.length > 128 * 1024, `a document bigger than a pipe buffer (${expected.length} bytes)`);
  const piped = vmgpuSlowPipe(['discover', '--json', '--sysfs-root', big, '--state-dir', state]);
  assert.equal(piped.length, expected.length, 'the output was cut short: the process exited before stdout drained');
  assert.equal(piped, expected);
});
