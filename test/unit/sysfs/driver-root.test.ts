/**
 * The host driver's nvidia-smi and libnvidia-ml.so.1 under a mounted driver
 * root (issue 11, defect 1): found at the places distributions and the GPU
 * Operator's driver container put them, run with only libnvidia-ml from the
 * host on the library path, and refused when a link leads out of the root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { driverToolsAt } from '../../../src/sysfs/driver-root.js';
import { RealHostTools } from '../../../src/sysfs/host-tools.js';
import { checkPciAddress } from '../../../src/model/pci.js';
import { createSimulatedNode } from '../../../src/simulator/index.js';

/** A driver root like a host's or a driver container's: nvidia-smi prints what the simulated driver would, when libnvidia-ml.so.1 is on its library path. */
function driverRoot(libDir: string): { root: string; pf: string; listing: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-driver-root-'));
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] });
  const pf = sim.gpus[0]!.pf.addr;
  const listing = sim.nvidiaSmiSupportedTypes(pf)!;
  fs.mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  fs.mkdirSync(path.join(root, libDir), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/share-listing.txt'), listing);
  fs.writeFileSync(path.join(root, libDir, 'libnvidia-ml.so.595.58.02'), 'not really a library\n');
  fs.symlinkSync('libnvidia-ml.so.595.58.02', path.join(root, libDir, 'libnvidia-ml.so.1'));
  // Also a library nvidia-smi must not pick up from the host: only libnvidia-ml goes on the path.
  fs.writeFileSync(path.join(root, libDir, 'libc.so.6'), 'the host libc\n');
  const script = `#!/bin/sh\n[ -e "$LD_LIBRARY_PATH/libnvidia-ml.so.1" ] || { echo "NVML not found" >&2; exit 9; }\n[ -e "$LD_LIBRARY_PATH/libc.so.6" ] && { echo "host libc on the path" >&2; exit 8; }\ncat ${JSON.stringify(path.join(root, 'usr/share-listing.txt'))}\n`;
  fs.writeFileSync(path.join(root, 'usr/bin/nvidia-smi'), script, { mode: 0o755 });
  return { root, pf, listing };
}

for (const libDir of ['usr/lib/x86_64-linux-gnu', 'usr/lib64']) {
  void test(`finds nvidia-smi and libnvidia-ml.so.1 (${libDir}) and runs nvidia-smi with only libnvidia-ml from the root`, async () => {
    const { root, pf, listing } = driverRoot(libDir);
    const found = driverToolsAt(root, fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-scratch-')));
    assert.ok(found.found, found.found ? '' : found.why);
    assert.equal(found.nvidiaSmi, path.join(root, 'usr/bin/nvidia-smi'));
    const tools = new RealHostTools({ sriovManage: '/nonexistent', nvidiaSmi: found.nvidiaSmi, libraryPath: found.libraryPath });
    assert.equal(await tools.nvidiaSmiSupportedTypes(checkPciAddress(pf)), listing);
  });
}

void test('a root without the tools says what it looked for', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-driver-root-'));
  const found = driverToolsAt(root, os.tmpdir());
  assert.ok(!found.found);
  assert.match(found.why, /no nvidia-smi under .*usr\/bin/);
});

void test('a link out of the root is not followed', () => {
  const { root } = driverRoot('usr/lib64');
  fs.rmSync(path.join(root, 'usr/lib64/libnvidia-ml.so.1'));
  fs.symlinkSync('/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1', path.join(root, 'usr/lib64/libnvidia-ml.so.1'));
  const found = driverToolsAt(root, os.tmpdir());
  assert.ok(!found.found);
  assert.match(found.why, /libnvidia-ml\.so\.1 links out of its directory/);
  fs.rmSync(path.join(root, 'usr/bin/nvidia-smi'));
  fs.symlinkSync('/usr/bin/true', path.join(root, 'usr/bin/nvidia-smi'));
  const smi = driverToolsAt(root, os.tmpdir());
  assert.ok(!smi.found);
  assert.match(smi.why, /nvidia-smi links out of its directory \(to \/usr\/bin\/true\)/);
});
