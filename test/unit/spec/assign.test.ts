/**
 * Which entry a GPU takes when several select it. NVIDIA's device manager
 * applies each matching entry in turn; a card takes only the entries whose
 * profiles it offers (NVIDIA's `default` lists 0x25B6 for A16 and for A2
 * profiles, 0x1E78 for Quadro RTX 8000 and 6000 passive). vmgpu resolves that
 * the same way and reports a positioned error only where two entries that the
 * card can both take would set it differently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignGpus, type GpuIdentity } from '../../../src/spec/match.js';
import type { ConfigEntry } from '../../../src/spec/config.js';
import { parseConfig } from '../../../src/spec/load.js';

/** One GPU of each kind, with the profiles its card offers. */
const CARDS: Record<string, { id: GpuIdentity; offers: string[] }> = {
  A16: { id: { index: 0, address: '0000:18:00.0', vendorId: '10de', deviceId: '25b6', subsystemVendorId: '10de', subsystemDeviceId: '14a9' }, offers: ['A16-8Q', 'A16-4Q'] },
  A2: { id: { index: 0, address: '0000:18:00.0', vendorId: '10de', deviceId: '25b6', subsystemVendorId: '10de', subsystemDeviceId: '157e' }, offers: ['A2-8Q', 'A2-4Q'] },
  RTX6000P: { id: { index: 0, address: '0000:3b:00.0', vendorId: '10de', deviceId: '1e78', subsystemVendorId: '10de', subsystemDeviceId: '13d9' }, offers: ['RTX6000P-12Q'] },
  L40S: { id: { index: 0, address: '0000:3b:00.0', vendorId: '10de', deviceId: '26b9', subsystemVendorId: '10de', subsystemDeviceId: '1851' }, offers: ['L40S-24Q', 'L40S-12Q', 'L40S-4Q'] },
};

interface Row {
  name: string;
  card: keyof typeof CARDS;
  /** Entries of config `c`, as YAML list items (the first at line 4). */
  entries: string[];
  /** Without the offers predicate: every entry applies. */
  blind?: boolean;
  /** Index of the entry the GPU takes, or the problem. */
  want: number | { line: number; message: RegExp };
}

const A16_A2 = ['- device-filter: "0x25B610DE"', '  devices: all', '  vgpu-devices: {A16-8Q: 2}', '- device-filter: "0x25B610DE"', '  devices: all', '  vgpu-devices: {A2-8Q: 2}'];

const rows: Row[] = [
  { name: "NVIDIA's 0x25B6 on an A16: the A16 entry", card: 'A16', entries: A16_A2, want: 0 },
  { name: "NVIDIA's 0x25B6 on an A2: the A2 entry", card: 'A2', entries: A16_A2, want: 1 },
  {
    name: "NVIDIA's 0x1E78 on a Quadro RTX 6000 passive: the RTX6000P entry",
    card: 'RTX6000P',
    entries: ['- device-filter: "0x1E7810DE"', '  devices: all', '  vgpu-devices: {RTX8000P-24Q: 2}', '- device-filter: "0x1E7810DE"', '  devices: all', '  vgpu-devices: {RTX6000P-12Q: 2}'],
    want: 1,
  },
  {
    name: 'the same target twice is no conflict (profile order does not matter)',
    card: 'L40S',
    entries: ['- devices: all', '  vgpu-devices: {L40S-24Q: 1, L40S-4Q: 6}', '  mixed-sizes: true', '- device-filter: "0x26B910DE"', '  devices: all', '  mixed-sizes: true', '  vgpu-devices: {L40S-4Q: 6, L40S-24Q: 1}'],
    want: 0,
  },
  {
    name: 'two entries the card can both take, set differently: an error at the second',
    card: 'L40S',
    entries: ['- devices: [0]', '  vgpu-devices: {L40S-12Q: 4}', '- device-filter: "0x26B910DE"', '  devices: all', '  vgpu-devices: {L40S-24Q: 2}'],
    want: { line: 6, message: /selects GPU 0000:3b:00\.0 \(10de:26b9, index 0\), which vgpu-configs\.c\[0\] \(line 4\) also selects and sets differently/ },
  },
  {
    name: 'an entry with no profiles fits any card: passthrough beside vGPUs conflicts',
    card: 'L40S',
    entries: ['- devices: all', '  mode: passthrough', '- device-filter: "0x26B910DE"', '  devices: all', '  vgpu-devices: {L40S-24Q: 2}'],
    want: { line: 6, message: /which vgpu-configs\.c\[0\] \(line 4\) also selects and sets differently/ },
  },
  {
    name: 'entries the card cannot take are passed over, however many',
    card: 'A2',
    entries: ['- devices: all', '  vgpu-devices: {L40S-24Q: 2}', '- devices: all', '  vgpu-devices: {A16-4Q: 4}', '- devices: all', '  vgpu-devices: {A2-4Q: 4}'],
    want: 2,
  },
  {
    name: 'no entry the card can take: an error at the first, naming what each asks',
    card: 'L40S',
    entries: A16_A2.map((l) => l.replace('0x25B610DE', '0x26B910DE')),
    want: { line: 4, message: /GPU 0000:3b:00\.0 \(10de:26b9, index 0\) is selected by 2 entries and offers the profiles of none of them \(vgpu-configs\.c\[0\] \(line 4\) asks for A16-8Q; vgpu-configs\.c\[1\] \(line 7\) asks for A2-8Q\)/ },
  },
  { name: 'one entry is taken even when the card lacks its profile (the planner says why)', card: 'L40S', entries: ['- devices: all', '  vgpu-devices: {A16-8Q: 2}'], want: 0 },
  {
    name: 'without knowledge of the card, two different entries conflict',
    card: 'A16',
    entries: A16_A2,
    blind: true,
    want: { line: 7, message: /which vgpu-configs\.c\[0\] \(line 4\) also selects and sets differently/ },
  },
];

function entriesOf(lines: string[]): ConfigEntry[] {
  const text = ['version: v1', 'vgpu-configs:', '  c:', ...lines.map((l) => `    ${l}`), ''].join('\n');
  return parseConfig(text, 'c.yaml').configs[0]!.entries;
}

for (const r of rows) {
  void test(`assignGpus with duplicated selections: ${r.name}`, () => {
    const card = CARDS[r.card]!;
    const entries = entriesOf(r.entries);
    const offers = (e: ConfigEntry) => e.vgpuDevices.every((d) => card.offers.includes(d.profile));
    const a = assignGpus(entries, [card.id], r.blind ? {} : { offers });
    if (typeof r.want === 'number') {
      assert.deepEqual(a.problems, []);
      assert.deepEqual(a.assigned.map((x) => x.entry), [entries[r.want]]);
      assert.deepEqual(a.untouched, []);
    } else {
      assert.equal(a.problems.length, 1, a.problems.map((p) => p.message).join('\n'));
      assert.equal(a.problems[0]!.line, r.want.line);
      assert.match(a.problems[0]!.message, r.want.message);
      assert.deepEqual(a.assigned, [], 'a GPU in conflict takes no entry');
    }
  });
}
