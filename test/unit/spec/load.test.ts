import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ConfigError } from '../../../src/spec/config.js';
import { configNames, loadConfigFile, parseConfig, selectConfig } from '../../../src/spec/load.js';
import { lines, oneProblem, problemsOf, withEntry } from './helpers.js';

test('the minimal NVIDIA entry parses to plain data', () => {
  const f = parseConfig(withEntry('devices: all', 'vgpu-devices:', '  "L40S-12Q": 4'), 'c.yaml');
  assert.equal(f.version, 'v1');
  assert.equal(f.filename, 'c.yaml');
  assert.deepEqual(configNames(f), ['c']);
  assert.deepEqual(f.configs[0]!.entries, [
    {
      deviceFilter: null,
      devices: 'all',
      pciAddresses: null,
      mode: 'vgpu',
      vgpuDevices: [{ profile: 'L40S-12Q', original: 'L40S-12Q', count: 4 }],
      vfPlacement: {},
      vgpuParams: {},
      resourceNames: {},
      passthroughResourceName: null,
      mixedSizes: null,
      line: 4,
      column: 7,
      path: 'vgpu-configs.c[0]',
    },
  ]);
  assert.equal(f.configs[0]!.line, 3);
});

test('a typo in a key reports the unknown key and the missing required key, sorted by line', () => {
  const ps = problemsOf(withEntry('devices: all', 'vgpu-device: {}'));
  assert.equal(ps.length, 2);
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [4, 7, 'vgpu-configs.c[0]'],
      [5, 7, 'vgpu-configs.c[0]'],
    ],
  );
  assert.match(ps[0]!.message, /missing required key "vgpu-devices"/);
  assert.match(ps[1]!.message, /unknown key "vgpu-device"; did you mean "vgpu-devices"\?/);
});

test('the error message is file:line:col: path: message, one line per problem', () => {
  const text = lines(
    'version: v1',
    'vgpu-configs:',
    '  l40s-mixed:',
    '    - devices: all',
    '      vgpu-devices:',
    '        "L40S-12Q": 1',
    '      colour: red',
  );
  try {
    parseConfig(text, 'config.yaml');
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.filename, 'config.yaml');
    assert.deepEqual(err.problems, [
      {
        path: 'vgpu-configs.l40s-mixed[0]',
        line: 7,
        column: 7,
        message: err.problems[0]!.message,
      },
    ]);
    assert.match(err.message, /^config\.yaml:7:7: vgpu-configs\.l40s-mixed\[0\]: unknown key "colour"; allowed keys: device-filter, devices, vgpu-devices/);
  }
});

test('unknown top-level keys and a wrong version are reported together', () => {
  const ps = problemsOf(lines('version: v2', 'bogus: field', 'vgpu-configs:', '  c:', '    - devices: all', '      vgpu-devices: {}'));
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [1, 10, 'version'],
      [2, 1, ''],
    ],
  );
  assert.match(ps[0]!.message, /unsupported version "v2": this vmgpu reads version v1/);
  assert.match(ps[1]!.message, /unknown key "bogus"/);
});

test('version is required when the file has content, and must be the string v1', () => {
  const missing = oneProblem(lines('vgpu-configs:', '  c:', '    - devices: all', '      vgpu-devices: {}'));
  assert.deepEqual([missing.line, missing.column], [1, 1]);
  assert.match(missing.message, /missing required key "version": add "version: v1"/);
  const num = oneProblem(lines('version: 1', 'vgpu-configs:', '  c:', '    - devices: all', '      vgpu-devices: {}'));
  assert.deepEqual([num.line, num.column, num.path], [1, 10, 'version']);
  assert.match(num.message, /expected v1, got the number 1/);
});

test('an empty file, a non-mapping root and several documents are rejected', () => {
  for (const t of ['', '\n\n# only a comment\n', '~\n']) {
    const p = oneProblem(t);
    assert.match(p.message, /the file is empty/);
  }
  const list = oneProblem('- a\n- b\n');
  assert.match(list.message, /expected a mapping with "version" and "vgpu-configs", got a list/);
  const two = oneProblem(lines('version: v1', '---', 'version: v1'));
  assert.equal(two.line, 2);
  assert.match(two.message, /one YAML document; this one has 2/);
});

test('a file with only a version is valid (as in NVIDIA), and selecting from it explains why nothing is there', () => {
  const f = parseConfig('version: v1\n', 'v.yaml');
  assert.deepEqual(f.configs, []);
  assert.throws(() => selectConfig(f, 'default'), (e: unknown) => e instanceof ConfigError && /defines no configs/.test(e.message));
});

test('vgpu-configs must hold at least one config and each config at least one entry', () => {
  const empty = oneProblem(lines('version: v1', 'vgpu-configs: {}'));
  assert.deepEqual([empty.line, empty.path], [2, 'vgpu-configs']);
  assert.match(empty.message, /at least one config is required/);
  const noEntries = oneProblem(lines('version: v1', 'vgpu-configs:', '  c: []'));
  assert.deepEqual([noEntries.line, noEntries.column, noEntries.path], [3, 6, 'vgpu-configs.c']);
  assert.match(noEntries.message, /at least one entry is required/);
  const notList = oneProblem(lines('version: v1', 'vgpu-configs:', '  c:', '    devices: all'));
  assert.deepEqual([notList.line, notList.path], [4, 'vgpu-configs.c']);
  assert.match(notList.message, /expected a list of entries .* got a mapping/);
});

test('config names follow the node-label grammar', () => {
  const p = oneProblem(lines('version: v1', 'vgpu-configs:', '  "bad name!":', '    - devices: all', '      vgpu-devices: {}'));
  assert.deepEqual([p.line, p.column, p.path], [3, 3, 'vgpu-configs']);
  assert.match(p.message, /not a valid config name: it is selected through the node label nvidia\.com\/vgpu\.config/);
  // Digits-only names are fine (they are label values too).
  const f = parseConfig(lines('version: v1', 'vgpu-configs:', '  1:', '    - devices: all', '      vgpu-devices: {}'), 'n.yaml');
  assert.deepEqual(configNames(f), ['1']);
});

test('duplicate keys are errors at every level, pointing at the second one', () => {
  const root = oneProblem(lines('version: v1', 'version: v1', 'vgpu-configs:', '  c:', '    - devices: all', '      vgpu-devices: {}'));
  assert.deepEqual([root.line, root.column, root.path], [2, 1, '']);
  assert.match(root.message, /duplicate key "version" \(first defined on line 1\)/);
  const cfg = oneProblem(lines('version: v1', 'vgpu-configs:', '  c:', '    - devices: all', '      vgpu-devices: {}', '  c:', '    - devices: all', '      vgpu-devices: {}'));
  assert.deepEqual([cfg.line, cfg.column, cfg.path], [6, 3, 'vgpu-configs']);
  const entry = oneProblem(withEntry('devices: all', 'devices: [0]', 'vgpu-devices: {}'));
  assert.deepEqual([entry.line, entry.column, entry.path], [5, 7, 'vgpu-configs.c[0]']);
  const types = oneProblem(withEntry('devices: all', 'vgpu-devices:', '  "L40S-12Q": 1', '  "L40S-12Q": 2'));
  assert.deepEqual([types.line, types.column, types.path], [7, 9, 'vgpu-configs.c[0].vgpu-devices']);
});

test('YAML syntax errors are reported with their position and nothing else', () => {
  const ps = problemsOf(lines('version: v1', 'vgpu-configs:', '  c:', '    - devices: [0, 1', '      vgpu-devices: {}'));
  assert.ok(ps.length >= 1);
  assert.ok(ps.every((p) => p.message.startsWith('YAML: ')));
  assert.deepEqual([ps[0]!.line, ps[0]!.column, ps[0]!.path], [5, 7, '']);
  assert.match(ps[0]!.message, /Flow sequence in block collection must be sufficiently indented and end with a \]/);
});

test('device-filter: a string or a list of "0xDDDDVVVV", optional ":0xSSSSVVVV" subsystem', () => {
  const one = parseConfig(withEntry('device-filter: "0x26B910DE"', 'devices: all', 'vgpu-devices: {}'), 'x');
  assert.deepEqual(one.configs[0]!.entries[0]!.deviceFilter, [{ deviceId: '26b9', vendorId: '10de' }]);
  const list = parseConfig(withEntry('device-filter: ["0x26B910DE", "0x20b510de:0x153310DE"]', 'devices: all', 'vgpu-devices: {}'), 'x');
  assert.deepEqual(list.configs[0]!.entries[0]!.deviceFilter, [
    { deviceId: '26b9', vendorId: '10de' },
    { deviceId: '20b5', vendorId: '10de', subsystemDeviceId: '1533', subsystemVendorId: '10de' },
  ]);
  // Unquoted, YAML reads 0x26B910DE as a number; it is accepted as written.
  const plain = parseConfig(withEntry('device-filter: 0x26B910DE', 'devices: all', 'vgpu-devices: {}'), 'x');
  assert.deepEqual(plain.configs[0]!.entries[0]!.deviceFilter, [{ deviceId: '26b9', vendorId: '10de' }]);
  // An empty filter matches every GPU, as in NVIDIA.
  const none = parseConfig(withEntry('device-filter: ""', 'devices: all', 'vgpu-devices: {}'), 'x');
  assert.equal(none.configs[0]!.entries[0]!.deviceFilter, null);
});

test('device-filter errors: a model name (NVIDIA silently matches nothing; vmgpu refuses), a bad subsystem, a wrong type', () => {
  const ps = problemsOf(withEntry('device-filter: ["A100-SXM4-80GB", "0x26B910DE:26B9", {a: 1}]', 'devices: all', 'vgpu-devices: {}'));
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [4, 23, 'vgpu-configs.c[0].device-filter[0]'],
      [4, 41, 'vgpu-configs.c[0].device-filter[1]'],
      [4, 60, 'vgpu-configs.c[0].device-filter[2]'],
    ],
  );
  assert.match(ps[0]!.message, /"A100-SXM4-80GB" is not a PCI ID filter: expected "0xDDDDVVVV" \(device ID then vendor ID/);
  assert.match(ps[1]!.message, /malformed subsystem part "26B9"/);
  assert.match(ps[2]!.message, /expected a PCI ID string such as "0x26B910DE", got a mapping/);
});

test('devices: "all" or a list of GPU indices; required unless pci-addresses is given', () => {
  const idx = parseConfig(withEntry('devices: [2, 0]', 'vgpu-devices: {}'), 'x');
  assert.deepEqual(idx.configs[0]!.entries[0]!.devices, [2, 0]);
  const missing = oneProblem(withEntry('vgpu-devices: {}'));
  assert.deepEqual([missing.line, missing.column, missing.path], [4, 7, 'vgpu-configs.c[0]']);
  assert.match(missing.message, /missing required key "devices"/);
  const word = oneProblem(withEntry('devices: al', 'vgpu-devices: {}'));
  assert.deepEqual([word.line, word.column, word.path], [4, 16, 'vgpu-configs.c[0].devices']);
  assert.match(word.message, /expected "all" or a list of GPU indices such as \[0, 1\], got the string "al"\. Did you mean "all"\?/);
  const bad = problemsOf(withEntry('devices: [0, "1", 1.5, -1, 0x2, 0]', 'vgpu-devices: {}'));
  assert.deepEqual(
    bad.map((p) => [p.column, p.path]),
    [
      [20, 'vgpu-configs.c[0].devices[1]'],
      [25, 'vgpu-configs.c[0].devices[2]'],
      [30, 'vgpu-configs.c[0].devices[3]'],
      [34, 'vgpu-configs.c[0].devices[4]'],
      [39, 'vgpu-configs.c[0].devices[5]'],
    ],
  );
  assert.match(bad[0]!.message, /expected a GPU index .* got the string "1"/);
  assert.match(bad[4]!.message, /GPU index 0 is listed twice/);
});

test('vgpu-devices: names with or without the NVIDIA / GRID prefix, normalised, original kept', () => {
  const f = parseConfig(withEntry('devices: all', 'vgpu-devices:', '  "NVIDIA L40S-12Q": 2', '  "GRID L40S-4Q": 1', '  L40S-6Q: 3'), 'x');
  assert.deepEqual(f.configs[0]!.entries[0]!.vgpuDevices, [
    { profile: 'L40S-12Q', original: 'NVIDIA L40S-12Q', count: 2 },
    { profile: 'L40S-4Q', original: 'GRID L40S-4Q', count: 1 },
    { profile: 'L40S-6Q', original: 'L40S-6Q', count: 3 },
  ]);
});

test('vgpu-devices may be empty or null (no vGPUs on the selected GPUs), as in NVIDIA', () => {
  for (const v of ['vgpu-devices: {}', 'vgpu-devices:']) {
    const f = parseConfig(withEntry('devices: all', v), 'x');
    assert.deepEqual(f.configs[0]!.entries[0]!.vgpuDevices, []);
  }
});

test('a numeric type is refused: profile IDs change between driver versions', () => {
  for (const key of ['557', '"557"']) {
    const p = oneProblem(withEntry('devices: all', 'vgpu-devices:', `  ${key}: 4`));
    assert.deepEqual([p.line, p.column, p.path], [6, 9, 'vgpu-configs.c[0].vgpu-devices']);
    assert.equal(p.message, '"557" is a number: profile IDs change between driver versions; use the name, e.g. L40S-12Q');
  }
});

test('bad type names and counts are reported each on its own line', () => {
  const ps = problemsOf(
    withEntry('devices: all', 'vgpu-devices:', '  l40s-12q: 1', '  "bad/name": 1', '  "L40S-4Q": 0', '  "L40S-6Q": two', '  "L40S-8Q": 1.0'),
  );
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [6, 9, 'vgpu-configs.c[0].vgpu-devices'],
      [7, 9, 'vgpu-configs.c[0].vgpu-devices'],
      [8, 20, 'vgpu-configs.c[0].vgpu-devices.L40S-4Q'],
      [9, 20, 'vgpu-configs.c[0].vgpu-devices.L40S-6Q'],
      [10, 20, 'vgpu-configs.c[0].vgpu-devices.L40S-8Q'],
    ],
  );
  assert.match(ps[0]!.message, /names are upper-case; did you mean "L40S-12Q"\?/);
  assert.match(ps[1]!.message, /"bad\/name" is not a vGPU profile name/);
  assert.match(ps[2]!.message, /count must be at least 1; remove the type to have none/);
  assert.match(ps[3]!.message, /expected a count from 1 to 65535, got the string "two"/);
  assert.match(ps[4]!.message, /expected a count from 1 to 65535, got the number 1\.0/);
});

test('the same type written twice (with and without prefix) is an error', () => {
  const p = oneProblem(withEntry('devices: all', 'vgpu-devices:', '  "L40S-12Q": 1', '  "NVIDIA L40S-12Q": 1'));
  assert.deepEqual([p.line, p.column], [7, 9]);
  assert.match(p.message, /"NVIDIA L40S-12Q" names the same type as "L40S-12Q"; merge them/);
});

test('time-sliced and MIG-backed types cannot share an entry (as in NVIDIA)', () => {
  const p = oneProblem(withEntry('devices: all', 'vgpu-devices:', '  "A100-4C": 1', '  "A100-1-5C": 1'));
  assert.deepEqual([p.line, p.column, p.path], [6, 9, 'vgpu-configs.c[0].vgpu-devices']);
  assert.match(p.message, /cannot mix time-sliced \(A100-4C\) and MIG-backed \(A100-1-5C\)/);
});

test('names the driver prints beyond NVIDIA\'s strict grammar are accepted (inventory grammar)', () => {
  const f = parseConfig(withEntry('devices: all', 'vgpu-devices:', '  "NVIDIA RTX6000-Ada-12Q": 1', '  "RTX Pro 6000 Blackwell DC-4Q": 1'), 'x');
  assert.deepEqual(
    f.configs[0]!.entries[0]!.vgpuDevices.map((d) => d.profile),
    ['RTX6000-Ada-12Q', 'DC-4Q'],
  );
  // ... and the MIG rule still sees DC-2-32C as MIG-backed.
  const p = oneProblem(withEntry('devices: all', 'vgpu-devices:', '  "DC-32C": 1', '  "DC-2-32C": 1'));
  assert.match(p.message, /cannot mix time-sliced/);
});

test('pci-addresses: canonicalised, validated with the sysfs grammar, no duplicates, not combined with device indices', () => {
  const f = parseConfig(withEntry('pci-addresses: ["3B:00.0", "00000000:86:00.0"]', 'vgpu-devices: {}'), 'x');
  const e = f.configs[0]!.entries[0]!;
  assert.deepEqual(e.pciAddresses, ['0000:3b:00.0', '0000:86:00.0']);
  assert.equal(e.devices, 'all');
  const single = parseConfig(withEntry('pci-addresses: "0000:3b:00.0"', 'devices: all', 'vgpu-devices: {}'), 'x');
  assert.deepEqual(single.configs[0]!.entries[0]!.pciAddresses, ['0000:3b:00.0']);

  const ps = problemsOf(withEntry('pci-addresses: ["../../etc", "0000:3b:00.0", "3b:00.0", 7]', 'devices: [0]', 'vgpu-devices: {}'));
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [4, 23, 'vgpu-configs.c[0].pci-addresses[0]'],
      [4, 52, 'vgpu-configs.c[0].pci-addresses[2]'],
      [4, 63, 'vgpu-configs.c[0].pci-addresses[3]'],
      [5, 16, 'vgpu-configs.c[0].devices'],
    ],
  );
  assert.match(ps[0]!.message, /"\.\.\/\.\.\/etc" is not a PCI address/);
  assert.match(ps[1]!.message, /PCI address 0000:3b:00\.0 is listed twice/);
  assert.match(ps[2]!.message, /expected a PCI address string .* got the number 7/);
  assert.match(ps[3]!.message, /use either "devices: \[indices\]" or "pci-addresses", not both/);
  const empty = oneProblem(withEntry('pci-addresses: []', 'vgpu-devices: {}'));
  assert.match(empty.message, /list at least one PCI address/);
});

test('mode: vgpu (default), passthrough or host; vGPU keys refused outside vgpu mode', () => {
  const f = parseConfig(
    lines(
      'version: v1',
      'vgpu-configs:',
      '  c:',
      '    - devices: [0]',
      '      mode: passthrough',
      '      resource-name: "example.com/l40s"',
      '    - devices: [1]',
      '      mode: host',
      '      vgpu-devices: {}',
      '    - devices: [2]',
      '      mode: vgpu',
      '      vgpu-devices: {"L40S-12Q": 4}',
    ),
    'x',
  );
  const [a, b, c] = f.configs[0]!.entries;
  assert.equal(a!.mode, 'passthrough');
  assert.equal(a!.passthroughResourceName, 'example.com/l40s');
  assert.deepEqual(a!.vgpuDevices, []);
  assert.equal(b!.mode, 'host');
  assert.equal(c!.mode, 'vgpu');

  const typo = oneProblem(withEntry('devices: all', 'mode: passthru'));
  assert.deepEqual([typo.line, typo.column, typo.path], [5, 13, 'vgpu-configs.c[0].mode']);
  assert.match(typo.message, /expected one of vgpu, passthrough, host, dra, got the string "passthru"\. Did you mean "passthrough"\?/);

  const ps = problemsOf(
    withEntry('devices: all', 'mode: host', 'vgpu-devices: {"L40S-12Q": 1}', 'mixed-sizes: true', 'resource-name: "example.com/x"'),
  );
  assert.deepEqual(
    ps.map((p) => [p.line, p.column]),
    [
      [6, 21],
      [7, 7],
      [8, 7],
    ],
  );
  assert.match(ps[0]!.message, /mode host takes no vGPUs/);
  assert.match(ps[1]!.message, /"mixed-sizes" only applies to mode vgpu; this entry is mode host/);
  assert.match(ps[2]!.message, /"resource-name" only applies to mode passthrough/);
});

test('vgpu mode requires vgpu-devices (NVIDIA requires it); passthrough does not', () => {
  const p = oneProblem(withEntry('devices: all'));
  assert.deepEqual([p.line, p.column], [4, 7]);
  assert.match(p.message, /missing required key "vgpu-devices": .* or \{\} for none/);
  parseConfig(withEntry('devices: all', 'mode: passthrough'), 'x');
});

test('vf-placement: one VF index per instance, types from vgpu-devices, no VF twice', () => {
  const f = parseConfig(
    withEntry('devices: all', 'vgpu-devices: {"L40S-12Q": 2, "L40S-6Q": 1}', 'vf-placement:', '  "NVIDIA L40S-12Q": [3, 1]', '  L40S-6Q: [0]'),
    'x',
  );
  assert.deepEqual(f.configs[0]!.entries[0]!.vfPlacement, { 'L40S-12Q': [3, 1], 'L40S-6Q': [0] });

  const ps = problemsOf(
    withEntry(
      'devices: all',
      'vgpu-devices: {"L40S-12Q": 2, "L40S-6Q": 1}',
      'vf-placement:',
      '  "L40S-12Q": [3]',
      '  "L40S-6Q": [3]',
      '  "L40S-8Q": [5]',
      '  "L40S-1Q": nope',
    ),
  );
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [7, 21, 'vgpu-configs.c[0].vf-placement.L40S-12Q'],
      [8, 21, 'vgpu-configs.c[0].vf-placement.L40S-6Q[0]'],
      [9, 9, 'vgpu-configs.c[0].vf-placement'],
      [10, 9, 'vgpu-configs.c[0].vf-placement'],
    ].sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number)),
  );
  const byPath = new Map(ps.map((p) => [`${p.line}:${p.column}`, p.message]));
  assert.match(byPath.get('7:21')!, /lists 1 VF but vgpu-devices asks for 2 L40S-12Q; list one VF index per instance/);
  assert.match(byPath.get('8:21')!, /VF 3 is already placed for L40S-12Q; one VF holds one vGPU/);
  assert.match(byPath.get('9:9')!, /"L40S-8Q" is not requested in vgpu-devices of this entry; did you mean "L40S-6Q"\?/);
  assert.match(byPath.get('10:9')!, /"L40S-1Q" is not requested/);
});

test('vgpu-params: per type, values as strings, grammar-checked keys and values', () => {
  const f = parseConfig(
    withEntry('devices: all', 'vgpu-devices: {"L40S-12Q": 1}', 'vgpu-params:', '  "L40S-12Q": {frame_rate_limiter: 0, enable_uvm: "1"}'),
    'x',
  );
  assert.deepEqual(f.configs[0]!.entries[0]!.vgpuParams, { 'L40S-12Q': { frame_rate_limiter: '0', enable_uvm: '1' } });
  const ps = problemsOf(
    withEntry('devices: all', 'vgpu-devices: {"L40S-12Q": 1}', 'vgpu-params:', '  "L40S-12Q": {"bad key": 1, a: "x,y=z", b: [1], c: true}'),
  );
  assert.deepEqual(
    ps.map((p) => [p.line, p.column]),
    [
      [7, 22],
      [7, 39],
      [7, 51],
      [7, 59],
    ],
  );
  assert.match(ps[0]!.message, /"bad key" is not a vgpu_params key/);
  assert.match(ps[1]!.message, /"x,y=z" is not a vgpu_params value/);
  assert.match(ps[2]!.message, /expected a string or number, got a list/);
  assert.match(ps[3]!.message, /expected a string or number, got the boolean true/);
});

test('resource-names: Kubernetes extended resource names per type', () => {
  const f = parseConfig(
    withEntry('devices: all', 'vgpu-devices: {"L40S-12Q": 1}', 'resource-names: {"L40S-12Q": "nvidia.com/L40S-12Q"}'),
    'x',
  );
  assert.deepEqual(f.configs[0]!.entries[0]!.resourceNames, { 'L40S-12Q': 'nvidia.com/L40S-12Q' });
  const bad = [
    ['"L40S-12Q"', /has no domain prefix/],
    ['"kubernetes.io/gpu"', /kubernetes\.io domain is reserved/],
    ['"Example.com/x"', /not a lower-case DNS subdomain/],
    ['"example.com/-x"', /name part "-x" must be/],
    ['"requests.example.com/x"', /"requests\." is not allowed/],
  ] as const;
  for (const [value, re] of bad) {
    const p = oneProblem(withEntry('devices: all', 'vgpu-devices: {"L40S-12Q": 1}', `resource-names: {"L40S-12Q": ${value}}`));
    assert.deepEqual([p.line, p.path], [6, 'vgpu-configs.c[0].resource-names.L40S-12Q']);
    assert.match(p.message, re);
  }
});

test('mixed-sizes is a boolean', () => {
  const f = parseConfig(withEntry('devices: all', 'vgpu-devices: {}', 'mixed-sizes: false'), 'x');
  assert.equal(f.configs[0]!.entries[0]!.mixedSizes, false);
  const p = oneProblem(withEntry('devices: all', 'vgpu-devices: {}', 'mixed-sizes: "yes"'));
  assert.deepEqual([p.line, p.column, p.path], [6, 20, 'vgpu-configs.c[0].mixed-sizes']);
  assert.match(p.message, /expected true or false, got the string "yes"/);
});

test('an entry that is not a mapping, and wrong types for mappings, say what was found', () => {
  const ps = problemsOf(lines('version: v1', 'vgpu-configs:', '  c:', '    - all', '    - devices: all', '      vgpu-devices: [L40S-12Q]'));
  assert.deepEqual(
    ps.map((p) => [p.line, p.column, p.path]),
    [
      [4, 7, 'vgpu-configs.c[0]'],
      [6, 21, 'vgpu-configs.c[1].vgpu-devices'],
    ],
  );
  assert.match(ps[0]!.message, /expected a mapping with "devices" and "vgpu-devices", got the string "all"/);
  assert.match(ps[1]!.message, /expected a mapping of vGPU type names to counts.*got a list/);
});

test('anchors and aliases work; hostile alias fan-out is bounded', () => {
  const f = parseConfig(
    lines('version: v1', 'vgpu-configs:', '  a: &e', '    - devices: all', '      vgpu-devices: {"L40S-12Q": 1}', '  b: *e'),
    'x',
  );
  assert.deepEqual(configNames(f), ['a', 'b']);
  assert.deepEqual(f.configs[1]!.entries[0]!.vgpuDevices, f.configs[0]!.entries[0]!.vgpuDevices);
  // Many alias tokens are refused before parsing.
  const flood = ['version: v1', 'vgpu-configs:', '  c0: [&e {devices: all, vgpu-devices: {}}]'];
  const row = `[${Array.from({ length: 60 }, () => '*e').join(', ')}]`;
  for (let i = 1; i <= 20; i++) flood.push(`  c${i}: ${row}`);
  const pf = problemsOf(lines(...flood));
  assert.equal(pf.length, 1);
  assert.match(pf[0]!.message, /the file uses 1200 aliases \(\*name\); at most 1000 are allowed/);
  // Few alias tokens that expand to many (an alias to a list of aliases) hit the expansion budget.
  const nested = ['version: v1', 'vgpu-configs:', '  c0: [&e {devices: all, vgpu-devices: {}}]'];
  nested.push(`  list: &l [${Array.from({ length: 30 }, () => '*e').join(', ')}]`);
  for (let i = 1; i <= 40; i++) nested.push(`  c${i}: *l`);
  const pn = problemsOf(lines(...nested));
  assert.equal(pn.length, 1, pn.map((p) => p.message).join('\n'));
  assert.match(pn[0]!.message, /too many alias expansions \(more than 1000\)/);
  // A dangling alias is reported once, not also as a wrong type.
  const dangling = oneProblem(lines('version: v1', 'vgpu-configs:', '  c: [*nope]'));
  assert.deepEqual([dangling.line, dangling.column], [3, 7]);
  assert.match(dangling.message, /alias \*nope refers to no anchor/);
});

test('selectConfig returns the entries, or names the closest and the available configs', () => {
  const f = parseConfig(
    lines('version: v1', 'vgpu-configs:', '  l40s-mixed:', '    - devices: all', '      vgpu-devices: {}', '  default:', '    - devices: all', '      vgpu-devices: {}'),
    'node.yaml',
  );
  assert.equal(selectConfig(f, 'default'), f.configs[1]!.entries);
  try {
    selectConfig(f, 'l40s-mixd');
    assert.fail('selected a missing config');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, 'node.yaml: vgpu-configs: no config named "l40s-mixd". Did you mean "l40s-mixed"? Available: l40s-mixed, default');
  }
});

test('loadConfigFile reads a file, and reports unreadable, oversized and non-UTF-8 files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-spec-'));
  try {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, `\ufeff${withEntry('devices: all', 'vgpu-devices: {}')}`);
    assert.equal(loadConfigFile(good).filename, good);
    assert.throws(() => loadConfigFile(join(dir, 'missing.yaml')), (e: unknown) => e instanceof ConfigError && /missing\.yaml: cannot read the config file: no such file/.test(e.message));
    assert.throws(() => loadConfigFile(dir), (e: unknown) => e instanceof ConfigError && /is a directory/.test(e.message));
    const bin = join(dir, 'bin.yaml');
    writeFileSync(bin, Buffer.from([0x76, 0xff, 0xfe, 0x0a]));
    assert.throws(() => loadConfigFile(bin), (e: unknown) => e instanceof ConfigError && /not valid UTF-8/.test(e.message));
    const huge = join(dir, 'huge.yaml');
    writeFileSync(huge, `# ${'x'.repeat(4 * 1024 * 1024)}\n`);
    assert.throws(() => loadConfigFile(huge), (e: unknown) => e instanceof ConfigError && /limited to 4194304 bytes/.test(e.message));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, withEntry('devices: all', 'vgpu-devices: {}', 'colour: red'));
    assert.throws(() => loadConfigFile(bad), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${bad}:6:7: vgpu-configs.c[0]: unknown key "colour"`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
