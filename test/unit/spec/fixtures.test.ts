import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../src/spec/config.js';
import { configNames, loadConfigFile, selectConfig } from '../../../src/spec/load.js';
import { assignGpus, entrySelects, filterMatches, gpuIdentity, selectGpus, type GpuIdentity } from '../../../src/spec/match.js';
import { parseConfig } from '../../../src/spec/load.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../../fixtures/configs/${name}`, import.meta.url));

test('NVIDIA\'s README example style (2-space indent, quoted types, comments, device indices) parses unchanged', () => {
  const f = loadConfigFile(fixture('nvidia-readme-style.yaml'));
  assert.deepEqual(configNames(f), ['L4-1Q', 'L4-2Q', 'L4-4Q', 'L4-24Q', 'T4-4C', 'L4-small', 'L4-large']);
  const small = selectConfig(f, 'L4-small');
  assert.deepEqual(
    small.map((e) => [e.devices, e.vgpuDevices.map((d) => `${d.profile}x${d.count}`), e.line]),
    [
      [[0], ['L4-1Qx24'], 32],
      [[1], ['L4-2Qx12'], 35],
    ],
  );
  for (const c of f.configs) for (const e of c.entries) assert.equal(e.mode, 'vgpu');
});

test('NVIDIA\'s examples/config-example.yaml style (4-space indent, device-filter lists, empty vgpu-devices) parses unchanged', () => {
  const f = loadConfigFile(fixture('nvidia-example-style.yaml'));
  assert.equal(f.configs.length, 10);
  const def = selectConfig(f, 'default');
  assert.deepEqual(def[0]!.deviceFilter, [{ deviceId: '26b9', vendorId: '10de' }]);
  assert.deepEqual(def[2]!.deviceFilter, [{ deviceId: '26b5', vendorId: '10de' }]);
  assert.deepEqual(def[0]!.vgpuDevices, [{ profile: 'L40S-24Q', original: 'L40S-24Q', count: 2 }]);
  assert.equal(def[1]!.line, 10);
  assert.deepEqual(selectConfig(f, 'A100-1-5C')[0]!.deviceFilter, [{ deviceId: '20f1', vendorId: '10de' }]);
  assert.deepEqual(selectConfig(f, 'H200X-1-18C')[0]!.devices, [0, 1, 2, 3]);
  assert.deepEqual(selectConfig(f, 'clear')[0]!.vgpuDevices, []);
});

test('the extensions example parses to the documented values', () => {
  const f = loadConfigFile(fixture('vmgpu-extensions.yaml'));
  const [small, big, whole, host] = selectConfig(f, 'mixed-node');
  assert.deepEqual(small!.pciAddresses, ['0000:3b:00.0']);
  assert.deepEqual(small!.vgpuDevices, [
    { profile: 'L40S-4Q', original: 'L40S-4Q', count: 8 },
    { profile: 'L40S-12Q', original: 'NVIDIA L40S-12Q', count: 1 },
  ]);
  assert.equal(small!.mixedSizes, true);
  assert.deepEqual(small!.vgpuParams, { 'L40S-4Q': { frame_rate_limiter: '0' } });
  assert.deepEqual(small!.resourceNames, { 'L40S-4Q': 'example.com/desktop-small' });
  assert.deepEqual(big!.vfPlacement, { 'L40S-24Q': [2, 3] });
  assert.equal(whole!.mode, 'passthrough');
  assert.equal(whole!.passthroughResourceName, 'example.com/l40s-whole');
  assert.equal(host!.mode, 'host');
  const [sub] = selectConfig(f, 'by-filter-and-subsystem');
  assert.deepEqual(sub!.deviceFilter, [{ deviceId: '26b9', vendorId: '10de', subsystemDeviceId: '1851', subsystemVendorId: '10de' }]);
  assert.deepEqual(sub!.vgpuDevices, [{ profile: 'L40S-6Q', original: 'GRID L40S-6Q', count: 8 }]);
});

test('the many-errors fixture reports every problem at its line, sorted', () => {
  try {
    loadConfigFile(fixture('invalid-many-errors.yaml'));
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(
      err.problems.map((p) => [p.line, p.column, p.path]),
      [
        [4, 22, 'vgpu-configs.l40s-mixed[0].device-filter'],
        [5, 20, 'vgpu-configs.l40s-mixed[0].devices[1]'],
        [8, 9, 'vgpu-configs.l40s-mixed[0].vgpu-devices'],
        [9, 20, 'vgpu-configs.l40s-mixed[0].vgpu-devices.L40S-4Q'],
        [10, 9, 'vgpu-configs.l40s-mixed[0].vgpu-devices'],
        [11, 7, 'vgpu-configs.l40s-mixed[0]'],
        [13, 23, 'vgpu-configs.passthrough-bad[0].pci-addresses[0]'],
        [16, 9, 'vgpu-configs.passthrough-bad[0].vgpu-devices'],
        [17, 7, 'vgpu-configs.passthrough-bad[0]'],
      ],
    );
    const lines = err.message.split('\n');
    assert.equal(lines.length, 9);
    assert.ok(lines.every((l) => l.startsWith(`${fixture('invalid-many-errors.yaml')}:`)));
  }
});

const gpus: GpuIdentity[] = [
  { index: 0, address: '0000:3b:00.0', vendorId: '10de', deviceId: '26b9', subsystemVendorId: '10de', subsystemDeviceId: '1851' },
  { index: 1, address: '0000:5e:00.0', vendorId: '0x10de', deviceId: '0x26B9', subsystemVendorId: '0x10de', subsystemDeviceId: '0x17f0' },
  { index: 2, address: '0000:86:00.0', vendorId: '10de', deviceId: '20f1', subsystemVendorId: null, subsystemDeviceId: null },
];

test('entrySelects: the intersection of device-filter, devices and pci-addresses; IDs compared in any case/prefix', () => {
  const f = parseConfig(
    [
      'version: v1',
      'vgpu-configs:',
      '  c:',
      '    - device-filter: "0x26B910DE"',
      '      devices: all',
      '      vgpu-devices: {}',
      '    - device-filter: "0x26B910DE:0x17F010DE"',
      '      devices: all',
      '      vgpu-devices: {}',
      '    - devices: [0, 2]',
      '      vgpu-devices: {}',
      '    - pci-addresses: ["86:00.0"]',
      '      device-filter: ["0x26B910DE"]',
      '      vgpu-devices: {}',
      '    - pci-addresses: ["86:00.0", "3b:00.0"]',
      '      vgpu-devices: {}',
      '',
    ].join('\n'),
    'x',
  );
  const sel = f.configs[0]!.entries.map((e) => selectGpus(e, gpus).map((g) => g.index));
  assert.deepEqual(sel, [[0, 1], [1], [0, 2], [], [0, 2]]);
  assert.equal(filterMatches({ deviceId: '20f1', vendorId: '10de', subsystemDeviceId: '0000', subsystemVendorId: '10de' }, gpus[2]!), false);
  assert.equal(entrySelects(f.configs[0]!.entries[0]!, gpus[2]!), false);
  const id = gpuIdentity({
    index: 4,
    pci: { address: '0000:af:00.0', vendorId: '10de', deviceId: '2331', subsystemVendorId: '10de', subsystemDeviceId: '1626' } as never,
  });
  assert.deepEqual(id, { index: 4, address: '0000:af:00.0', vendorId: '10de', deviceId: '2331', subsystemVendorId: '10de', subsystemDeviceId: '1626' });
});

test('every YAML example in docs/config.md that is a config file parses', () => {
  const doc = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => b.startsWith('version: v1'));
  assert.ok(blocks.length >= 3, `found ${blocks.length} examples`);
  for (const b of blocks) {
    const f = parseConfig(b, 'docs/config.md');
    assert.ok(f.configs.length > 0);
  }
});

test('assignGpus: one entry per GPU; out-of-range indices, unknown addresses, conflicting claims and empty selections are positioned errors', () => {
  const cfg = (...entryLines: string[]): ReturnType<typeof parseConfig> =>
    parseConfig(['version: v1', 'vgpu-configs:', '  c:', ...entryLines, ''].join('\n'), 'node.yaml');

  // NVIDIA's pattern: entries for models this node lacks are fine.
  const multi = cfg(
    '    - device-filter: "0x26B910DE"',
    '      devices: all',
    '      vgpu-devices: {"L40S-24Q": 2}',
    '    - device-filter: "0x233110DE"',
    '      devices: all',
    '      vgpu-devices: {"H100-80C": 1}',
  );
  const a = assignGpus(multi.configs[0]!.entries, gpus);
  assert.deepEqual(a.problems, []);
  assert.deepEqual(a.assigned.map((x) => [x.gpu.index, x.entry.line]), [
    [0, 4],
    [1, 4],
  ]);
  assert.deepEqual(a.untouched.map((g) => g.index), [2]);
  assert.deepEqual(a.unmatched.map((e) => e.line), [7]);

  const bad = cfg(
    '    - devices: [0, 7]',
    '      vgpu-devices: {}',
    '    - pci-addresses: ["0000:3b:00.0", "0000:99:00.0"]',
    '      mode: passthrough',
  );
  const b = assignGpus(bad.configs[0]!.entries, gpus);
  assert.deepEqual(
    b.problems.map((p) => [p.line, p.column, p.path]),
    [
      [4, 7, 'vgpu-configs.c[0].devices'],
      [6, 7, 'vgpu-configs.c[1].pci-addresses'],
      [6, 7, 'vgpu-configs.c[1]'],
    ],
  );
  assert.match(b.problems[0]!.message, /GPU index 7 is out of range: this node has 3 NVIDIA GPUs \(indices 0-2\)/);
  assert.match(b.problems[1]!.message, /0000:99:00\.0 is not an NVIDIA GPU on this node \(GPUs: 0000:3b:00\.0, 0000:5e:00\.0, 0000:86:00\.0\)/);
  assert.match(b.problems[2]!.message, /selects GPU 0000:3b:00\.0 \(10de:26b9, index 0\), which vgpu-configs\.c\[0\] \(line 4\) also selects and sets differently/);

  const none = cfg('    - device-filter: "0x233110DE"', '      devices: all', '      vgpu-devices: {}');
  const n = assignGpus(none.configs[0]!.entries, gpus);
  assert.equal(n.problems.length, 1);
  assert.deepEqual([n.problems[0]!.line, n.problems[0]!.path], [4, 'vgpu-configs.c']);
  assert.match(n.problems[0]!.message, /this config selects no GPU on this node \(NVIDIA GPUs here: 0000:3b:00\.0 \(10de:26b9, index 0\)/);
  assert.match(assignGpus(bad.configs[0]!.entries, []).problems[0]!.message, /GPU index 0: this node has no NVIDIA GPU/);
});
