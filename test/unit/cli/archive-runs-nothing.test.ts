/**
 * Issue 12, defect 1: a capture archive is evidence, never code. An archive
 * whose host/usr/lib/nvidia/sriov-manage is a script used to have that script
 * run as root by `apply --sysfs-root ev.tar.gz` when VFs had to be enabled.
 * Now apply on an archive is refused before anything is read or planned, and
 * the host tools of an archive (or of any plain directory tree) can run
 * nothing at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSimulatedNode, materialize } from '../../../src/simulator/index.js';
import { openMachine } from '../../../src/cli/context.js';
import type { Machine } from '../../../src/machine/machine.js';
import { SysfsError } from '../../../src/sysfs/errors.js';
import { NoHostTools } from '../../../src/sysfs/host-tools.js';
import type { PciAddress } from '../../../src/model/pci.js';
import { describeRun, runCli } from './run-cli.js';

const CONFIG = 'version: v1\nvgpu-configs:\n  x:\n    - devices: all\n      vgpu-devices:\n        L40S-12Q: 2\n';

async function withEvidence(f: (w: { dir: string; tree: string; archive: string; config: string; ran: string }) => void | Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-evidence-'));
  try {
    const tree = path.join(dir, 'tree');
    materialize(createSimulatedNode({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }] }), tree);
    const ran = path.join(dir, 'it-ran');
    const tool = path.join(tree, 'host/usr/lib/nvidia/sriov-manage');
    fs.rmSync(tool);
    fs.writeFileSync(tool, `#!/bin/sh\nid -u > ${JSON.stringify(ran)}\n`, { mode: 0o755 });
    fs.chmodSync(tool, 0o755);
    const archive = path.join(dir, 'ev.tar.gz');
    execFileSync('tar', ['czf', archive, 'sys', 'dev', 'host'], { cwd: tree });
    const config = path.join(dir, 'x.yaml');
    fs.writeFileSync(config, CONFIG);
    await f({ dir, tree, archive, config, ran });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void test('apply on a capture archive is refused with a clear message; nothing from the archive runs', async () => {
  await withEvidence((w) => {
    const r = runCli(['apply', '--sysfs-root', w.archive, '-f', w.config, '-c', 'x', '--state-dir', path.join(w.dir, 'state')]);
    assert.equal(fs.existsSync(w.ran), false, 'the script in the archive ran');
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /^vmgpu: apply cannot change a capture archive \(.*ev\.tar\.gz\): a capture is evidence of a node, never a node to change, and vmgpu runs nothing from it\./);
    assert.match(r.stderr, /vmgpu plan --sysfs-root .*ev\.tar\.gz/);
  });
});

void test('on a plain directory tree, apply does not run the tree\'s sriov-manage either: it fails, saying why', async () => {
  await withEvidence((w) => {
    const r = runCli(['apply', '--sysfs-root', w.tree, '-f', w.config, '-c', 'x', '--state-dir', path.join(w.dir, 'state')]);
    assert.equal(fs.existsSync(w.ran), false, 'the script in the tree ran');
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stdout, /FAILED: .*sriov-manage.*host tools run only on a live host/);
  });
});

void test('plan and discover on the archive still work (reading is what an archive is for)', async () => {
  await withEvidence((w) => {
    const r = runCli(['plan', '--sysfs-root', w.archive, '-f', w.config, '-c', 'x', '--state-dir', path.join(w.dir, 'state')]);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.stdout, /enable .*VFs/i);
    assert.equal(fs.existsSync(w.ran), false);
  });
});

void test('by construction: the context of an archive writes nothing, and no tree context runs a program', async () => {
  const pf = '0000:18:00.0' as PciAddress;
  const check = async (ctx: Machine, writeCode: string, why: RegExp) => {
    assert.ok(ctx.tools instanceof NoHostTools);
    await assert.rejects(ctx.tools.sriovManageEnable(pf), (e: unknown) => e instanceof SysfsError && e.code === 'EPERM' && why.test(e.detail ?? ''));
    await assert.rejects(ctx.tools.setHeterogeneousMode(pf, true), (e: unknown) => e instanceof SysfsError && e.code === 'EPERM');
    assert.equal(await ctx.tools.nvidiaSmiSupportedTypes(pf), undefined);
    assert.equal(await ctx.tools.heterogeneousMode(pf), undefined);
    assert.throws(() => ctx.port.writeSriovNumVfs(pf, 4), (e: unknown) => e instanceof SysfsError && e.code === writeCode);
  };
  await withEvidence(async (w) => {
    const state = path.join(w.dir, 'state');
    await check(openMachine({ 'sysfs-root': w.archive, 'state-dir': state }), 'EROFS', /capture archive: evidence of a node/);
    // A plain tree may be written (tests, sim trees), but runs no program.
    const tree = openMachine({ 'sysfs-root': w.tree, 'state-dir': state });
    assert.ok(tree.tools instanceof NoHostTools);
    await assert.rejects(tree.tools.sriovManageEnable(pf), (e: unknown) => e instanceof SysfsError && e.code === 'EPERM' && /run only on a live host/.test(e.detail ?? ''));
  });
});
