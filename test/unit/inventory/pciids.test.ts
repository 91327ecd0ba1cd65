import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  PciIds,
  PciIdsError,
  deviceDisplayName,
  loadFirstPciIds,
  passthroughResourceName,
  resourceNameFromDeviceName,
} from '../../../src/inventory/pciids.js';

const SAMPLE = fileURLToPath(new URL('../../fixtures/pci.ids.sample', import.meta.url));

void test('vendor, device and subsystem names from a pci.ids file', () => {
  const ids = PciIds.load(SAMPLE);
  assert.equal(ids.vendorName('10de'), 'NVIDIA Corporation');
  assert.equal(ids.vendorName('0x10DE'), 'NVIDIA Corporation');
  assert.equal(ids.deviceName('10de', '2236'), 'GA102GL [A10]');
  assert.equal(ids.deviceName('10DE', '26B9'), 'AD102GL [L40S]');
  assert.equal(ids.subsystemName('10de', '25b6', '10de', '14a9'), 'A16');
  assert.equal(ids.subsystemName('10de', '25b6', '10de', '157e'), 'A2');
  assert.equal(ids.deviceName('10ec', '8168'), 'RTL8111/8168/8211/8411 PCI Express Gigabit Ethernet Controller');
  assert.equal(ids.deviceName('10de', '27b8'), undefined, 'not in the sample');
  assert.equal(ids.vendorName('ffff'), undefined);
  // The class section (`C 03` then `\t02  3D controller`) is not read as devices.
  assert.equal(ids.deviceName('10ec', '0002'), undefined);
  assert.equal(ids.vendorCount, 3);
});

void test('lookups with malformed IDs return undefined instead of throwing', () => {
  const ids = PciIds.load(SAMPLE);
  for (const bad of ['', '10d', '10dex', '../10de', '\0', 'zzzz', '10de\n10ec']) {
    assert.equal(ids.vendorName(bad), undefined, JSON.stringify(bad));
    assert.equal(ids.deviceName('10de', bad), undefined, JSON.stringify(bad));
  }
});

void test('load() names the file and says how to fix it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-pciids-'));
  try {
    const missing = join(dir, 'nope.ids');
    assert.throws(() => PciIds.load(missing), (e: unknown) => e instanceof PciIdsError && e.message.includes(missing) && /ENOENT/.test(e.message) && /pciutils|hwdata/.test(e.message));
    const garbage = join(dir, 'garbage.ids');
    writeFileSync(garbage, 'this is not\na pci.ids file\n');
    assert.throws(() => PciIds.load(garbage), (e: unknown) => e instanceof PciIdsError && e.message.includes(garbage) && /not a PCI IDs database/.test(e.message));
    const sub = join(dir, 'adir');
    mkdirSync(sub);
    assert.throws(() => PciIds.load(sub), (e: unknown) => e instanceof PciIdsError && e.message.includes(sub));
    assert.equal(loadFirstPciIds([missing, SAMPLE]).source, SAMPLE);
    assert.equal(loadFirstPciIds([missing]).vendorCount, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('deviceDisplayName: database, then vmgpu models for NVIDIA, then vvvv:dddd', () => {
  const ids = PciIds.load(SAMPLE);
  assert.equal(deviceDisplayName(ids, '10de', '26b9'), 'AD102GL [L40S]');
  assert.equal(deviceDisplayName(ids, '10de', '27b8'), 'AD104GL [L4]', 'L4 is missing from the sample: models.ts');
  assert.equal(deviceDisplayName(PciIds.empty(), '10de', '2335'), 'GH100 [H200 SXM 141GB]');
  assert.equal(deviceDisplayName(PciIds.empty(), '10de', 'abcd'), '10de:abcd');
  assert.equal(deviceDisplayName(PciIds.empty(), '0x8086', '0x1234'), '8086:1234');
  assert.equal(deviceDisplayName(PciIds.empty(), '10de', '../x'), '10de:unknown', 'garbage is not echoed');
});

void test('passthrough resource names follow the GPU Operator convention (CONTRACTS §7)', () => {
  const ids = PciIds.load(SAMPLE);
  assert.equal(passthroughResourceName(ids, '10de', '2236'), 'nvidia.com/GA102GL_A10');
  assert.equal(passthroughResourceName(ids, '10de', '26b9'), 'nvidia.com/AD102GL_L40S');
  assert.equal(passthroughResourceName(ids, '10de', '1eb8'), 'nvidia.com/TU104GL_TESLA_T4');
  assert.equal(passthroughResourceName(ids, '10de', '20b5'), 'nvidia.com/GA100_A100_PCIE_80GB');
  assert.equal(passthroughResourceName(ids, '10de', '25b6'), 'nvidia.com/GA107GL_A2___A16');
  // Not in the database: vmgpu's table gives the same name a current database would.
  assert.equal(passthroughResourceName(PciIds.empty(), '10de', '2236'), 'nvidia.com/GA102GL_A10');
  assert.equal(passthroughResourceName(PciIds.empty(), '10de', '2321'), 'nvidia.com/GH100_H100L_94GB');
  // Unknown everywhere: the hex device ID, as NVIDIA's plugin does.
  assert.equal(passthroughResourceName(PciIds.empty(), '10de', '1234'), 'nvidia.com/1234');
  assert.equal(resourceNameFromDeviceName('GA100 [A100-SXM-64GB]'), 'GA100_A100SXM64GB');
  assert.equal(resourceNameFromDeviceName('  Foo.Bar/Baz   Qux (rev) '), 'FOO_BAR_BAZ_QUX_REV');
});

void test('property: resource names are always a valid Kubernetes extended-resource name', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ maxLength: 6 }), (name, dev) => {
      const ids = PciIds.fromText(`10de  NVIDIA Corporation\n\t1234  ${name.replace(/[\r\n]/g, ' ')}\n`);
      const r = passthroughResourceName(ids, '10de', dev.length === 4 ? dev : '1234');
      assert.match(r, /^nvidia\.com\/[A-Za-z0-9_]{1,80}$/);
    }),
    { numRuns: 500 },
  );
});

// How long the load takes is measured by the CLI benchmarks (bench/), never asserted in a test.
void test('a full-size database loads and finds devices past thousands of other vendors', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-pciids-'));
  try {
    // ~1.6 MB: 3000 filler vendors with devices and subsystems, NVIDIA in the middle.
    const sample = readFileSync(SAMPLE, 'utf8');
    const filler: string[] = [];
    for (let v = 0x2000; v < 0x2000 + 3000; v++) {
      filler.push(`${v.toString(16)}  Vendor ${v}`);
      for (let d = 0; d < 8; d++) filler.push(`\t${(0x1000 + d).toString(16)}  Device ${d} of vendor ${v} [Something Long Enough]`, `\t\t1028 ${(0x0100 + d).toString(16).padStart(4, '0')}  Subsystem`);
    }
    const [head, classes] = sample.split('\nC 03');
    const big = join(dir, 'pci.ids');
    writeFileSync(big, `${head}\n${filler.join('\n')}\nC 03${classes}`);
    const t0 = performance.now();
    const ids = PciIds.load(big);
    const name = ids.deviceName('10de', '2236');
    const ms = performance.now() - t0;
    assert.equal(name, 'GA102GL [A10]');
    assert.equal(ids.deviceName('2bb7', '1007'), 'Device 7 of vendor 11191 [Something Long Enough]');
    t.diagnostic(`pci.ids ${(Buffer.byteLength(readFileSync(big, 'utf8')) / 1e6).toFixed(2)} MB: load + first lookup ${ms.toFixed(1)} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
