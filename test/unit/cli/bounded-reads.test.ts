/**
 * Issue 12, defect 2: every read has a bound, checked while reading. A config
 * or import that never ends (/dev/zero, `yes |`), or a tree whose attribute is
 * a link to /dev/zero or a FIFO, ends in one clear error within seconds and a
 * bounded amount of memory; before, each of these hung and grew to gigabytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSimulatedNode, materialize } from '../../../src/simulator/index.js';
import { describeRun, runCli } from './run-cli.js';

const LIMITS = { timeoutMs: 25_000, maxOldSpaceMiB: 160 };

function withTree(f: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-bounded-'));
  try {
    materialize(createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q'] }] }), path.join(dir, 'node'));
    f(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void test('validate-config -f /dev/zero stops at the 4 MiB config limit', () => {
  const r = runCli(['validate-config', '-f', '/dev/zero'], LIMITS);
  assert.equal(r.code, 2, describeRun(r));
  assert.match(r.stderr, /^vmgpu: \/dev\/zero: cannot read the config file: it holds more than 4 MiB; config files are limited to 4194304 bytes\n$/);
});

void test('an endless config on standard input (`yes | vmgpu validate-config -f -`) stops at the limit', () => {
  const r = runCli(['validate-config', '-f', '-'], { ...LIMITS, stdinFrom: 'yes' });
  assert.equal(r.code, 2, describeRun(r));
  assert.match(r.stderr, /^vmgpu: <stdin>: cannot read the config file: it holds more than 4 MiB/);
});

void test('import cozystack /dev/zero stops at the 1 MiB import limit, before reading the node', () => {
  const r = runCli(['import', 'cozystack', '/dev/zero', '--sysfs-root', '/nonexistent-root'], LIMITS);
  assert.equal(r.code, 2, describeRun(r));
  assert.match(r.stderr, /^vmgpu: \/dev\/zero: cannot read the profiles file: it holds more than 1 MiB; Cozystack profile files are limited to 1048576 bytes\n$/);
});

void test('a tree attribute linked to /dev/zero, or a FIFO, is refused with a warning; discover still finishes', () => {
  withTree((dir) => {
    const pf = path.join(dir, 'node/sys/bus/pci/devices/0000:18:00.0');
    fs.rmSync(path.join(pf, 'numa_node'));
    fs.symlinkSync('/dev/zero', path.join(pf, 'numa_node'));
    fs.rmSync(path.join(pf, 'reset_method'));
    execFileSync('mkfifo', [path.join(pf, 'reset_method')]);
    const r = runCli(['discover', '--json', '--sysfs-root', path.join(dir, 'node'), '--state-dir', path.join(dir, 'state')], LIMITS);
    assert.equal(r.code, 0, describeRun(r));
    const inv = JSON.parse(r.stdout) as { gpus: { warnings: { code: string; message: string }[] }[]; warnings: { code: string; message: string }[] };
    const warnings = [...inv.warnings, ...inv.gpus.flatMap((g) => g.warnings)].map((w) => `${w.code}: ${w.message}`).join('\n');
    assert.match(warnings, /numa_node: .*(not a regular file|larger than)/, warnings);
    assert.match(warnings, /reset_method: .*not a regular file/, warnings);
  });
});
