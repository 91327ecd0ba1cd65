import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatCreatableVgpuTypes,
  parseCreatableVgpuTypes,
  parseCreatableVgpuTypesDetailed,
  parseMdevDescription,
  parseNvidiaSmiSupportedTypes,
  parseNvidiaSmiSupportedTypesDetailed,
  toVgpuType,
  type CatalogEntry,
} from '../../../src/inventory/catalog.js';
import { allBoards } from '../../../src/model/boards.js';
import { cleanTypeName } from '../../../src/model/profile.js';

// ---- creatable_vgpu_types --------------------------------------------------------

void test('creatable_vgpu_types: header line then <id> : <name>', () => {
  const text = 'ID    : vGPU Name\n1414 : NVIDIA H200X-1-18C\n1428 : NVIDIA H200X-141C\n';
  assert.deepEqual(parseCreatableVgpuTypesDetailed(text), {
    entries: [
      { id: 1414, name: 'NVIDIA H200X-1-18C' },
      { id: 1428, name: 'NVIDIA H200X-141C' },
    ],
    malformed: [],
  });
});

void test('creatable_vgpu_types: empty, header-only and blank files list nothing', () => {
  for (const t of ['', '\n', 'ID    : vGPU Name\n', '   \r\n\t\n', 'ID : vGPU type\r\n']) {
    assert.deepEqual(parseCreatableVgpuTypesDetailed(t), { entries: [], malformed: [] }, JSON.stringify(t));
  }
});

void test('creatable_vgpu_types: CRLF, tabs, extra spaces, reversed and colon-less orders', () => {
  const text = 'vGPU Name     ID\r\n  NVIDIA L40S-24Q\t\t  1077  \r\n\t1078\t:\tNVIDIA   L40S-48Q\r\n1079 NVIDIA L40S-12Q\r\nGRID T4-1Q : 222\n';
  assert.deepEqual(parseCreatableVgpuTypes(text), [
    { id: 1077, name: 'NVIDIA L40S-24Q' },
    { id: 1078, name: 'NVIDIA L40S-48Q' },
    { id: 1079, name: 'NVIDIA L40S-12Q' },
    { id: 222, name: 'GRID T4-1Q' },
  ]);
});

void test('creatable_vgpu_types: garbage lines are reported, not parsed; duplicates keep the first', () => {
  const text = [
    '1 : NVIDIA L4-1Q',
    '0 : NVIDIA L4-2Q', // 0 means "no type"
    '99999999999 : NVIDIA L4-3Q', // overflow
    '12 : ../../etc/passwd',
    '13 : NVIDIA L4-4Q\0',
    '14 :',
    'NVIDIA L4-6Q',
    '1 : NVIDIA L4-1Q',
    '1 : NVIDIA L4-8Q',
    '15 : NVIDIA L4-12Q',
  ].join('\n');
  const r = parseCreatableVgpuTypesDetailed(text);
  assert.deepEqual(r.entries, [
    { id: 1, name: 'NVIDIA L4-1Q' },
    { id: 15, name: 'NVIDIA L4-12Q' },
  ]);
  assert.equal(r.malformed.length, 7);
  assert.ok(r.malformed.includes('1 : NVIDIA L4-8Q'));
});

const nameChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.+()'.split(''));
const typeName = fc
  .tuple(fc.constantFrom('NVIDIA ', 'GRID ', ''), fc.stringMatching(/^[A-Z][A-Z0-9]{0,6}$/), fc.array(nameChar, { maxLength: 20 }))
  .map(([p, b, rest]) => cleanTypeName(`${p}${b}${rest.join('')}`))
  .filter((n): n is string => n !== undefined);
const entriesArb = fc.uniqueArray(fc.record({ id: fc.integer({ min: 1, max: 0x7fffffff }), name: typeName }), {
  selector: (e) => e.id,
  maxLength: 40,
});

void test('property: format -> parse round-trips any valid catalog', () => {
  fc.assert(
    fc.property(entriesArb, (entries: CatalogEntry[]) => {
      const r = parseCreatableVgpuTypesDetailed(formatCreatableVgpuTypes(entries));
      assert.deepEqual(r.entries, entries.map((e) => ({ id: e.id, name: e.name })));
      assert.deepEqual(r.malformed, []);
    }),
    { numRuns: 300 },
  );
});

const hostile = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.array(
    fc.oneof(
      fc.constantFrom('\0', '/', '..', ':', '\r', '\n', '\t', ' ', 'ID', 'NVIDIA ', '-', '99999999999999999999', '1e9', '0x10', '\u202e', '日本', '\uffff'),
      fc.nat().map(String),
      typeName,
    ),
    { maxLength: 40 },
  ).map((parts) => parts.join('')),
);

function assertSafeName(name: string): void {
  assert.ok(![...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f || c === '/'), `unsafe character in ${JSON.stringify(name)}`);
  assert.ok(!name.includes('..'), name);
  assert.ok(!/[^\x20-\x7e]/.test(name), `non-ASCII in ${JSON.stringify(name)}`);
  assert.equal(name, name.trim());
}

void test('property: hostile creatable_vgpu_types input never throws and never yields an unsafe entry', () => {
  fc.assert(
    fc.property(hostile, (text) => {
      const r = parseCreatableVgpuTypesDetailed(text);
      const ids = new Set<number>();
      for (const e of r.entries) {
        assert.ok(Number.isSafeInteger(e.id) && e.id > 0 && e.id <= 0x7fffffff);
        assert.ok(!ids.has(e.id), 'duplicate id');
        ids.add(e.id);
        assertSafeName(e.name);
      }
      for (const m of r.malformed) assert.ok(!m.includes('\n'));
    }),
    { numRuns: 1000 },
  );
});

// ---- nvidia-smi vgpu -s -v ---------------------------------------------------------

const SMI = `GPU 00000000:3B:00.0
    vGPU Type ID                          : 0x3a4
        Name                              : NVIDIA L40S-1B
        Class                             : NVS
        GPU Instance Profile ID           : N/A
        Max Instances                     : 32
        Max Instances Per VM              : 1
        FB Memory                         : 1024 MiB
    vGPU Type ID                          : 0x3b7
        Name                              : NVIDIA L40S-24Q
        Class                             : Quadro
        Max Instances                     : 2
        FB Memory                         : 24576 MiB

GPU 00000000:5E:00.0
    vGPU Type ID                          : 0x3b7
        Name                              : NVIDIA L40S-24Q
`;

void test('nvidia-smi vgpu -s -v: hex IDs, names, max instances and framebuffer per GPU', () => {
  assert.deepEqual(parseNvidiaSmiSupportedTypes(SMI), [
    { id: 0x3a4, name: 'NVIDIA L40S-1B' },
    { id: 0x3b7, name: 'NVIDIA L40S-24Q' },
  ]);
  const detailed = parseNvidiaSmiSupportedTypesDetailed(SMI.replace(/\n/g, '\r\n'));
  assert.equal(detailed.length, 3);
  assert.deepEqual(detailed[0], {
    id: 932, name: 'NVIDIA L40S-1B', gpu: '00000000:3B:00.0', maxInstances: 32, framebufferMiB: 1024, vgpuClass: 'NVS',
  });
  assert.equal(detailed[2]!.gpu, '00000000:5E:00.0');
  assert.equal(detailed[2]!.maxInstances, null);
});

void test('nvidia-smi vgpu -s (non-verbose) has no IDs and yields nothing', () => {
  assert.deepEqual(parseNvidiaSmiSupportedTypes('GPU 00000000:3B:00.0\n    NVIDIA L40S-1B\n    NVIDIA L40S-2B\n'), []);
  assert.deepEqual(parseNvidiaSmiSupportedTypes(''), []);
  assert.deepEqual(parseNvidiaSmiSupportedTypes('    Name : NVIDIA L40S-1B\n'), [], 'a Name without a preceding ID is ignored');
});

void test('property: hostile nvidia-smi output never throws and never yields an unsafe entry', () => {
  const smiLike = fc
    .array(fc.oneof(hostile, fc.constantFrom('vGPU Type ID : 0x', 'Name : ', 'GPU 0000:00:00.0', 'FB Memory : ', 'Max Instances : ')), { maxLength: 30 })
    .map((p) => p.join('\n'));
  fc.assert(
    fc.property(fc.oneof(hostile, smiLike), (text) => {
      for (const e of parseNvidiaSmiSupportedTypesDetailed(text)) {
        assert.ok(Number.isSafeInteger(e.id) && e.id > 0);
        assertSafeName(e.name);
      }
    }),
    { numRuns: 1000 },
  );
});

// ---- mdev description -----------------------------------------------------------

void test('mdev description: the fields NVIDIA prints', () => {
  assert.deepEqual(parseMdevDescription('num_heads=4, frl_config=60, framebuffer=1024M, max_resolution=5120x2880, max_instance=24\n'), {
    raw: 'num_heads=4, frl_config=60, framebuffer=1024M, max_resolution=5120x2880, max_instance=24',
    numHeads: 4,
    frlConfig: 60,
    framebufferMiB: 1024,
    maxResolution: '5120x2880',
    maxInstance: 24,
  });
  assert.equal(parseMdevDescription('framebuffer=40960M').framebufferMiB, 40960);
  assert.equal(parseMdevDescription('framebuffer=4G').framebufferMiB, 4096);
  assert.deepEqual(parseMdevDescription('framebuffer=lots, num_heads=-1, max_instance=99999999999'), {
    raw: 'framebuffer=lots, num_heads=-1, max_instance=99999999999',
  });
});

void test('property: parseMdevDescription never throws and only sets sane numbers', () => {
  fc.assert(
    fc.property(hostile, (text) => {
      const d = parseMdevDescription(text);
      for (const k of ['numHeads', 'frlConfig', 'framebufferMiB', 'maxInstance'] as const) {
        const v = d[k];
        if (v !== undefined) assert.ok(Number.isSafeInteger(v) && v >= 0, `${k}=${v}`);
      }
      if (d.maxResolution !== undefined) assert.match(d.maxResolution, /^[0-9]+x[0-9]+$/);
    }),
    { numRuns: 500 },
  );
});

// ---- toVgpuType -----------------------------------------------------------------

void test('toVgpuType fills facts for known profiles and the name parse otherwise', () => {
  assert.deepEqual(toVgpuType({ id: 1077, name: 'NVIDIA L40S-24Q' }, 'creatable'), {
    id: 1077, name: 'NVIDIA L40S-24Q', profile: 'L40S-24Q', series: 'Q', framebufferMiB: 24576, maxInstances: 2, migBacked: false, source: 'creatable',
  });
  assert.deepEqual(toVgpuType({ id: 5, name: 'GRID M60-0Q' }, 'mdev'), {
    id: 5, name: 'GRID M60-0Q', profile: 'M60-0Q', series: 'Q', framebufferMiB: 512, maxInstances: null, migBacked: false, source: 'mdev',
  });
  const odd = toVgpuType({ id: 6, name: 'NVIDIA Mystery' }, 'cache');
  assert.equal(odd.series, 'unknown');
  assert.equal(odd.framebufferMiB, null);
});

void test('every documented profile maps to a VgpuType carrying its facts', () => {
  for (const b of allBoards()) {
    for (const p of b.profiles) {
      const t = toVgpuType({ id: 1, name: `NVIDIA ${p.profile}` }, 'nvidia-smi');
      assert.equal(t.profile, p.profile);
      // A name two boards offer with different limits (DC-16Q) has none until the planner knows the card.
      const shared = allBoards().some((o) => o !== b && o.profiles.some((f) => f.profile === p.profile && f.maxInstances !== p.maxInstances));
      assert.equal(t.maxInstances, shared ? null : p.maxInstances, p.profile);
      assert.equal(t.framebufferMiB, p.framebufferMiB);
      assert.equal(t.migBacked, p.migBacked);
    }
  }
});
