/**
 * validate-config without a node reports what the planner would refuse on
 * every node (profiles, counts, mixing, conflicting entries), and nothing
 * that depends on the node (VF counts, size mode, which GPUs it has, boards
 * vmgpu has no facts for).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateOnPaper } from '../../../src/plan/validate.js';
import { parseConfig } from '../../../src/spec/load.js';
import { nvidiaExampleYaml } from '../spec/nvidia-example.js';

interface Row {
  name: string;
  /** Entries of config `c`, as YAML list items (the first at line 4). */
  entries: string[];
  /** Each error as `line: message`, or none. */
  errors: RegExp[];
  note?: RegExp;
}

const rows: Row[] = [
  { name: 'a profile the board lacks, with suggestions', entries: ['- devices: all', '  vgpu-devices: {L40S-13Q: 1}'], errors: [/^4: L40S-13Q is not a vGPU profile of L40S\. Did you mean "L40S-12Q" or "L40S-16Q"\?$/] },
  { name: "another board's profile under a device filter", entries: ['- device-filter: "0x26B910DE"', '  devices: all', '  vgpu-devices: {A100D-10C: 1}'], errors: [/^4: A100D-10C is not a vGPU profile of L40S; its profiles start with L40S-/] },
  { name: 'more than fit', entries: ['- devices: all', '  vgpu-devices: {L40S-24Q: 3}'], errors: [/^4: 3 x L40S-24Q on any L40S: at most 2 fit on one L40S; 3 x L40S-16Q fit \(the largest Q profile of which 3 do\)$/, /^4: 3 x L40S-24Q needs 72 GB of framebuffer; L40S has 48 GB$/] },
  { name: 'two series on one GPU', entries: ['- devices: all', '  mixed-sizes: true', '  vgpu-devices: {L40S-12Q: 1, L40S-12C: 1}'], errors: [/^4: vGPUs of different series cannot share a GPU \(L40S-12Q, L40S-12C on any L40S\)/] },
  { name: 'two types on an mdev card', entries: ['- devices: all', '  vgpu-devices: {A100D-10C: 1, A100D-20C: 1}'], errors: [/^4: A100 80GB PCIe takes one vGPU type per GPU; requested A100D-10C and A100D-20C$/] },
  { name: 'mixed-sizes on an mdev card', entries: ['- devices: all', '  mixed-sizes: true', '  vgpu-devices: {T4-4Q: 4}'], errors: [/^4: mixed-sizes applies to SR-IOV vGPU GPUs only$/] },
  { name: "two boards' profiles in one entry", entries: ['- devices: all', '  mixed-sizes: true', '  vgpu-devices: {L40S-24Q: 1, L4-12Q: 1}'], errors: [/^4: L4-12Q is not a vGPU profile of L40S/, /^4: L40S-24Q is not a vGPU profile of L4/] },
  { name: 'a profile the filtered Blackwell board lacks', entries: ['- device-filter: "0x2BB510DE"', '  devices: all', '  vgpu-devices: {DC-2-8C: 4}'], errors: [/^4: DC-2-8C is not a vGPU profile of RTX PRO 6000 Blackwell Server Edition/] },
  { name: 'a GFX name counts as its type', entries: ['- devices: all', '  vgpu-devices: {DC-1-24QGFX: 5}'], errors: [/^4: 5 x DC-1-24QGFX on any RTX PRO 6000 Blackwell Server Edition: at most 4 fit/] },
  {
    name: 'two entries set one GPU differently',
    entries: ['- devices: [0]', '  vgpu-devices: {L40S-12Q: 4}', '- device-filter: "0x26B910DE"', '  devices: all', '  vgpu-devices: {L40S-24Q: 2}'],
    errors: [/^6: selects the same GPUs as vgpu-configs\.c\[0\] \(line 4\) and sets them differently \(both apply to an NVIDIA L40S\)/],
  },
  { name: '0x25B6 with A16 profiles only: the filter names A16 and A2, and an A16 takes it', entries: ['- device-filter: "0x25B610DE"', '  devices: all', '  vgpu-devices: {A16-4Q: 2}'], errors: [] },
  {
    name: 'a filter naming two models, one of which lacks the profile',
    entries: ['- device-filter: ["0x233110DE", "0x233010DE"]', '  devices: all', '  vgpu-devices: {H100-20C: 4}'],
    errors: [/^4: H100-20C is not a vGPU profile of H100 SXM5 80GB; its profiles start with H100XM-/],
  },
  { name: "NVIDIA's 0x25B6 for A16 and for A2", entries: ['- device-filter: "0x25B610DE"', '  devices: all', '  vgpu-devices: {A16-8Q: 2}', '- device-filter: "0x25B610DE"', '  devices: all', '  vgpu-devices: {A2-8Q: 2}'], errors: [] },
  { name: 'the same target twice', entries: ['- devices: all', '  vgpu-devices: {L40S-24Q: 2}', '- device-filter: "0x26B910DE"', '  devices: all', '  vgpu-devices: {L40S-24Q: 2}'], errors: [] },
  { name: 'passthrough by index beside a filter: only some nodes put that board there', entries: ['- devices: [0, 1]', '  mode: passthrough', '- device-filter: "0x223610DE"', '  devices: all', '  vgpu-devices: {A10-1Q: 24}'], errors: [] },
  { name: 'mixed sizes without the flag: the node may be in mixed-size mode', entries: ['- devices: all', '  vgpu-devices: {L40S-12Q: 1, L40S-4Q: 2}'], errors: [], note: /L40S-12Q and L40S-4Q \(config c\) need mixed-size vGPU mode: add `mixed-sizes: true` unless the GPUs are already in it/ },
  { name: 'a vf-placement index: VF counts are the node\'s', entries: ['- devices: all', '  vgpu-devices: {L40S-24Q: 1}', '  vf-placement: {L40S-24Q: [40]}'], errors: [] },
  { name: 'a device vmgpu has no facts for', entries: ['- device-filter: "0x1DB110DE"', '  devices: all', '  vgpu-devices: {V100X-8Q: 2}'], errors: [], note: /not checked, vmgpu has no facts for these devices .*: 10de:1db1 \(V100X-8Q\)/ },
  { name: 'a board vmgpu has no facts for', entries: ['- devices: all', '  vgpu-devices: {V100X-8Q: 2}'], errors: [], note: /not checked, vmgpu has no profile facts for their boards .*: V100X-8Q/ },
  { name: "a name the 4500's partial table lacks", entries: ['- device-filter: "0x2C3A10DE"', '  devices: all', '  vgpu-devices: {DC-4Q: 8}'], errors: [], note: /not fully checked, vmgpu's table of NVIDIA RTX PRO 4500 Blackwell Server Edition profiles is partial .*: DC-4Q/ },
  { name: 'a name only the 4500 offers', entries: ['- devices: all', '  vgpu-devices: {DC-2-8C: 4}'], errors: [] },
  { name: "MIG-backed counts as NVIDIA gives them (names round the instance's memory up)", entries: ['- devices: all', '  vgpu-devices: {H100L-1-24C: 4}'], errors: [] },
];

for (const r of rows) {
  void test(`validate-config on paper: ${r.name}`, () => {
    const text = ['version: v1', 'vgpu-configs:', '  c:', ...r.entries.map((l) => `    ${l}`), ''].join('\n');
    const res = validateOnPaper(parseConfig(text, 'c.yaml'));
    const got = res.errors.map((e) => `${e.where.split(':')[1]}: ${e.message}`);
    assert.equal(got.length, r.errors.length, got.join('\n'));
    for (const [i, re] of r.errors.entries()) assert.match(got[i]!, re);
    if (r.note) assert.ok(res.notes.some((n) => r.note!.test(n)), res.notes.join('\n'));
  });
}

void test("every config of NVIDIA's example validates; boards vmgpu has no facts for are noted, in one line", () => {
  const res = validateOnPaper(parseConfig(nvidiaExampleYaml(), 'config-example.yaml'));
  assert.deepEqual(res.errors, []);
  const boards = res.notes.find((n) => n.startsWith('not checked, vmgpu has no profile facts for their boards'));
  assert.ok(boards, res.notes.join('\n'));
  assert.ok(boards.includes('A30-1-6C'), boards);
  assert.match(boards, /and \d+ more$/, 'a long list is cut short');
  const devices = res.notes.find((n) => n.startsWith('not checked, vmgpu has no facts for these devices'));
  assert.ok(devices?.includes('10de:1e78 (RTX8000P-24Q)') && devices.includes('10de:20b8 (A100D-40C)'), devices);
  for (const known of ['DC-48Q', 'B200X-180C', 'GB200-189C', '6000D-84Q']) assert.ok(!res.notes.join('\n').includes(known), `${known}: its board is checked`);
});
