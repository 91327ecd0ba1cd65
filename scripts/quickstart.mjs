#!/usr/bin/env node
// The Quick start's main job: show what vmgpu sees on this machine and, when
// there is no NVIDIA GPU here, do it on the built-in simulator: create a
// node with four L40S, plan and apply examples/quickstart.yaml, and show the
// result. Nothing on the real machine is changed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cli = [JSON.parse(readFileSync('package.json', 'utf8')).bin.vmgpu];
function vmgpu(args, { allowFail = false } = {}) {
  console.log(`\n$ vmgpu ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [...cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0 && !allowFail) {
    console.error(`vmgpu ${args[0]} exited with ${r.status}`);
    process.exit(r.status ?? 1);
  }
  return r.status;
}

function hostHasNvidiaGpu() {
  const dir = '/sys/bus/pci/devices';
  if (!existsSync(dir)) return false;
  for (const d of readdirSync(dir)) {
    try {
      const vendor = readFileSync(join(dir, d, 'vendor'), 'utf8').trim();
      const cls = readFileSync(join(dir, d, 'class'), 'utf8').trim();
      if (vendor === '0x10de' && /^0x030[02]/.test(cls)) return true;
    } catch {
      // not readable: skip
    }
  }
  return false;
}

if (hostHasNvidiaGpu() && !process.env.VMGPU_QUICKSTART_SIMULATE) {
  console.log('NVIDIA GPU found: showing what vmgpu sees on this host (read-only).');
  vmgpu(['discover']);
  console.log('\nNext: write a config (docs/config.md), then `vmgpu plan -f FILE -c NAME` and `vmgpu apply -f FILE -c NAME` as root.');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-quickstart-'));
  console.log(`No NVIDIA GPU on this machine: using vmgpu's simulator, a node with 4 x L40S under the NVIDIA vGPU manager, in ${dir}.`);
  vmgpu(['sim', 'create', '--out', dir, '--model', 'L40S', '--gpus', '4', '--mode', 'sriov-vgpu']);
  vmgpu(['discover', '--simulate', dir]);
  vmgpu(['plan', '--simulate', dir, '-f', 'examples/quickstart.yaml', '-c', 'quickstart']);
  vmgpu(['apply', '--simulate', dir, '-f', 'examples/quickstart.yaml', '-c', 'quickstart']);
  vmgpu(['discover', '--simulate', dir]);
  vmgpu(['assert', '--simulate', dir, '-f', 'examples/quickstart.yaml', '-c', 'quickstart']);
  console.log(`\nThe simulated node stays in ${dir}: try \`node dist/bundle/vmgpu.mjs discover --json --simulate ${dir}\`, or \`vmgpu sim hold ${dir} <VF>\` and apply another config to see in-use protection.`);
}
