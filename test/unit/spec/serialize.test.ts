import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { ConfigError, type ConfigEntry, type ConfigFile, type GpuMode } from '../../../src/spec/config.js';
import type { DeviceFilter } from '../../../src/spec/grammar.js';
import { parseConfig } from '../../../src/spec/load.js';
import { serializeConfig } from '../../../src/spec/serialize.js';

const FIXTURES = new URL('../../fixtures/configs/', import.meta.url);

/** What must survive a round trip: everything but positions and the as-written spelling. */
function essence(f: ConfigFile): unknown {
  return f.configs.map((c) => ({
    name: c.name,
    entries: c.entries.map((e) => ({
      deviceFilter: e.deviceFilter,
      devices: e.devices,
      pciAddresses: e.pciAddresses,
      mode: e.mode,
      vgpuDevices: e.vgpuDevices.map((d) => ({ profile: d.profile, count: d.count })),
      vfPlacement: e.vfPlacement,
      vgpuParams: e.vgpuParams,
      resourceNames: e.resourceNames,
      passthroughResourceName: e.passthroughResourceName,
      mixedSizes: e.mixedSizes,
    })),
  }));
}

const hex4 = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16).padStart(4, '0'));
const filterArb: fc.Arbitrary<DeviceFilter> = fc
  .tuple(hex4, hex4, fc.option(fc.tuple(hex4, hex4), { nil: undefined }))
  .map(([deviceId, vendorId, sub]) => (sub ? { deviceId, vendorId, subsystemDeviceId: sub[0], subsystemVendorId: sub[1] } : { deviceId, vendorId }));
const pciArb = fc
  .tuple(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0, max: 7 }))
  .map(([b, d, f]) => `0000:${b.toString(16).padStart(2, '0')}:${d.toString(16).padStart(2, '0')}.${f}`);
const boardArb = fc.constantFrom('L40S', 'A100', 'A100D', 'T4', 'H200X', 'DC', 'M60', 'RTX6000-Ada');
const timeSliced = fc
  .tuple(boardArb, fc.integer({ min: 0, max: 96 }), fc.constantFrom('Q', 'B', 'A', 'C'))
  .map(([b, gb, s]) => `${b}-${gb}${s}`);
const migBacked = fc
  .tuple(boardArb, fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 141 }), fc.boolean())
  .map(([b, g, gb, me]) => `${b}-${g}-${gb}C${me ? 'ME' : ''}`);
const nameArb = fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,12}[A-Za-z0-9])?$/);
const paramKey = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,10}$/);
const paramValue = fc.stringMatching(/^[A-Za-z0-9_.:+-]{1,8}$/);

const vgpuPart = fc
  .boolean()
  .chain((mig) => fc.uniqueArray(mig ? migBacked : timeSliced, { maxLength: 4 }))
  .chain((profiles) =>
    fc.record({
      counts: fc.tuple(...profiles.map(() => fc.integer({ min: 1, max: 8 }))),
      placed: fc.tuple(...profiles.map(() => fc.boolean())),
      params: fc.tuple(...profiles.map(() => fc.option(fc.dictionary(paramKey, paramValue, { maxKeys: 3 }), { nil: undefined }))),
      names: fc.tuple(...profiles.map(() => fc.boolean())),
      vfOrder: fc.shuffledSubarray(Array.from({ length: 64 }, (_, i) => i), { minLength: 64, maxLength: 64 }),
      mixedSizes: fc.option(fc.boolean(), { nil: null }),
    }).map((r) => {
      const vgpuDevices = profiles.map((p, i) => ({ profile: p, original: p, count: r.counts[i]! }));
      const vfPlacement: Record<string, number[]> = {};
      let next = 0;
      profiles.forEach((p, i) => {
        if (r.placed[i]) vfPlacement[p] = r.vfOrder.slice(next, (next += r.counts[i]!));
      });
      const vgpuParams: Record<string, Record<string, string>> = {};
      profiles.forEach((p, i) => {
        if (r.params[i] !== undefined) vgpuParams[p] = { ...r.params[i] };
      });
      const resourceNames: Record<string, string> = {};
      profiles.forEach((p, i) => {
        if (r.names[i]) resourceNames[p] = `example.com/${p.toLowerCase()}`;
      });
      return { vgpuDevices, vfPlacement, vgpuParams, resourceNames, mixedSizes: r.mixedSizes };
    }),
  );

const selectionArb = fc.oneof(
  fc.constant({ devices: 'all' as const, pciAddresses: null }),
  fc.record({ devices: fc.uniqueArray(fc.integer({ min: 0, max: 15 }), { maxLength: 4 }), pciAddresses: fc.constant(null) }),
  fc.record({ devices: fc.constant('all' as const), pciAddresses: fc.uniqueArray(pciArb, { minLength: 1, maxLength: 3 }) }),
);

const entryArb: fc.Arbitrary<ConfigEntry> = fc
  .record({
    mode: fc.constantFrom<GpuMode>('vgpu', 'passthrough', 'host'),
    deviceFilter: fc.option(fc.array(filterArb, { minLength: 1, maxLength: 3 }), { nil: null }),
    selection: selectionArb,
    vgpu: vgpuPart,
    passthroughName: fc.option(fc.constantFrom('nvidia.com/L40S', 'example.com/gpu-whole'), { nil: null }),
  })
  .map(({ mode, deviceFilter, selection, vgpu, passthroughName }) => {
    const isVgpu = mode === 'vgpu';
    return {
      deviceFilter,
      devices: selection.devices,
      pciAddresses: selection.pciAddresses,
      mode,
      vgpuDevices: isVgpu ? vgpu.vgpuDevices : [],
      vfPlacement: isVgpu ? vgpu.vfPlacement : {},
      vgpuParams: isVgpu ? vgpu.vgpuParams : {},
      resourceNames: isVgpu ? vgpu.resourceNames : {},
      passthroughResourceName: mode === 'passthrough' ? passthroughName : null,
      mixedSizes: isVgpu ? vgpu.mixedSizes : null,
      line: 0,
      column: 0,
      path: '',
    };
  });

const fileArb: fc.Arbitrary<ConfigFile> = fc
  .uniqueArray(fc.tuple(nameArb, fc.array(entryArb, { minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 4, selector: ([n]) => n })
  .map((configs) => ({ version: 'v1' as const, filename: 'gen.yaml', configs: configs.map(([name, entries]) => ({ name, entries, line: 0 })) }));

test('property: random valid configs round-trip through serializeConfig -> parseConfig', () => {
  fc.assert(
    fc.property(fileArb, (file) => {
      const text = serializeConfig(file);
      let back: ConfigFile;
      try {
        back = parseConfig(text, 'gen.yaml');
      } catch (err) {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- text ---\n${text}`, { cause: err });
      }
      assert.deepEqual(essence(back), essence(file));
      // And writing it again gives the same text.
      assert.equal(serializeConfig(back), text);
    }),
    { numRuns: 300 },
  );
});

test('property: random junk never crashes the parser: it returns a config or throws ConfigError with positioned problems', () => {
  const yamlish = fc.string({
    unit: fc.constantFrom(...'version: v1\nvgpu-configs:-[]{}"\'&*!|>#,0123456789abcxyzL40S-12Q \t\n\n  - devices: all\nvgpu-devices'.split('')),
    maxLength: 300,
  });
  const check = (text: string): void => {
    try {
      parseConfig(text, 'junk.yaml');
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      assert.ok(err.problems.length > 0);
      const nLines = text.split('\n').length;
      for (const p of err.problems) {
        assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= nLines + 1, `line ${p.line} of ${nLines}`);
        assert.ok(Number.isInteger(p.column) && p.column >= 1);
        assert.equal(typeof p.message, 'string');
      }
    }
  };
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), check), { numRuns: 300 });
  fc.assert(fc.property(yamlish, check), { numRuns: 500 });
  // Valid files with random edits (delete, duplicate or insert a character).
  fc.assert(
    fc.property(fileArb, fc.array(fc.tuple(fc.nat(), fc.constantFrom('del', 'dup', 'ins')), { minLength: 1, maxLength: 4 }), fc.string({ maxLength: 2 }), (file, edits, ins) => {
      let text = serializeConfig(file);
      for (const [at, op] of edits) {
        const i = at % Math.max(1, text.length);
        if (op === 'del') text = text.slice(0, i) + text.slice(i + 1);
        else if (op === 'dup') text = text.slice(0, i) + text.charAt(i) + text.slice(i);
        else text = text.slice(0, i) + ins + text.slice(i);
      }
      check(text);
    }),
    { numRuns: 300 },
  );
});

test('serialized output uses NVIDIA\'s documented layout and only NVIDIA keys when no extension is used', () => {
  const f = parseConfig(readFileSync(new URL('nvidia-readme-style.yaml', FIXTURES), 'utf8'), 'nvidia-readme-style.yaml');
  const text = serializeConfig(f);
  const allowed = new Set(['version', 'vgpu-configs', 'device-filter', 'devices', 'vgpu-devices']);
  const plain = parseYaml(text) as { 'vgpu-configs': Record<string, Record<string, unknown>[]> };
  for (const entries of Object.values(plain['vgpu-configs'])) {
    for (const e of entries) for (const k of Object.keys(e)) assert.ok(allowed.has(k), `unexpected key ${k}`);
  }
  assert.ok(text.startsWith('version: v1\nvgpu-configs:\n  L4-1Q:\n    - devices: all\n      vgpu-devices:\n        "L4-1Q": 24\n'));
});

test('serializeConfig writes every extension, quotes what YAML would misread, and adds a header', () => {
  const f = parseConfig(
    [
      'version: v1',
      'vgpu-configs:',
      '  "yes":',
      '    - device-filter: ["0x26B910DE:0x185110DE"]',
      '      pci-addresses: ["3b:00.0"]',
      '      vgpu-devices: {"NVIDIA L40S-12Q": 2}',
      '      vf-placement: {L40S-12Q: [4, 1]}',
      '      vgpu-params: {L40S-12Q: {frame_rate_limiter: 0, "on": abc}}',
      '      resource-names: {L40S-12Q: example.com/small}',
      '      mixed-sizes: false',
      '  "007":',
      '    - devices: [1, 0]',
      '      mode: passthrough',
      '      resource-name: example.com/whole',
      '',
    ].join('\n'),
    'x.yaml',
  );
  const text = serializeConfig(f, { header: ['Written by vmgpu export', '', 'node: n1'] });
  assert.equal(
    text,
    [
      '# Written by vmgpu export',
      '#',
      '# node: n1',
      'version: v1',
      'vgpu-configs:',
      '  "yes":',
      '    - device-filter: "0x26B910DE:0x185110DE"',
      '      devices: all',
      '      pci-addresses: ["0000:3b:00.0"]',
      '      vgpu-devices:',
      '        "L40S-12Q": 2',
      '      vf-placement:',
      '        "L40S-12Q": [4, 1]',
      '      vgpu-params:',
      '        "L40S-12Q": {frame_rate_limiter: 0, "on": "abc"}',
      '      resource-names:',
      '        "L40S-12Q": "example.com/small"',
      '      mixed-sizes: false',
      '',
      '  "007":',
      '    - devices: [1, 0]',
      '      mode: passthrough',
      '      resource-name: "example.com/whole"',
      '',
    ].join('\n'),
  );
  assert.deepEqual(essence(parseConfig(text, 'x.yaml')), essence(f));
});
