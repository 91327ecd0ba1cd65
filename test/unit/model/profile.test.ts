/**
 * The one profile grammar: every shape NVIDIA's tools and driver write, one
 * result type, and nothing unsafe ever comes out of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isMigBacked, isNvidiaProfileShape, parseProfile, stripVendorPrefix } from '../../../src/model/profile.js';

void test('parseProfile: time-sliced, MIG-backed and prefixed names', () => {
  assert.deepEqual(parseProfile('NVIDIA L40S-12Q'), { name: 'L40S-12Q', board: 'L40S', framebufferGB: 12, series: 'Q', gpuInstanceSlices: null, attribute: null });
  assert.deepEqual(parseProfile('GRID T4-1Q'), { name: 'T4-1Q', board: 'T4', framebufferGB: 1, series: 'Q', gpuInstanceSlices: null, attribute: null });
  assert.deepEqual(parseProfile('A100-1-5C'), { name: 'A100-1-5C', board: 'A100', framebufferGB: 5, series: 'C', gpuInstanceSlices: 1, attribute: null });
  assert.equal(parseProfile('NVIDIA H200X-1-18C')?.gpuInstanceSlices, 1);
  assert.equal(parseProfile('A100D-4-20C')?.board, 'A100D');
  assert.equal(parseProfile('A100-1-5CME')?.attribute, 'ME');
  assert.equal(parseProfile('NVIDIA RTX6000-Ada-4Q')?.board, 'RTX6000-Ada');
  assert.equal(parseProfile('GRID M60-0Q')?.framebufferGB, 0);
  assert.equal(parseProfile('NVIDIA L40S-12Q\n')?.name, 'L40S-12Q', 'a sysfs trailing newline is fine');
  assert.equal(parseProfile('GRID M60-2B4')?.series, 'B');
  for (const bad of ['', 'L40S', 'L40S-Q', 'L40S-12X', '-12Q', 'NVIDIA ', 'L40S-12Q/..', 'L40S\n-12Q', 'A100-9-5C x', 'A100-5CME']) {
    assert.equal(parseProfile(bad), undefined, JSON.stringify(bad));
  }
});

void test("a driver type name is read as NVIDIA's tools read it: its last word is the profile", () => {
  // The RTX PRO 6000 Blackwell driver prints "NVIDIA RTX Pro 6000 Blackwell DC-1-3Q"; NVIDIA's configs say DC-1-3Q.
  assert.deepEqual(parseProfile('NVIDIA RTX Pro 6000 Blackwell DC-1-3Q'), { name: 'DC-1-3Q', board: 'DC', framebufferGB: 3, series: 'Q', gpuInstanceSlices: 1, attribute: null });
  assert.equal(parseProfile('NVIDIA RTX Pro 6000 Blackwell DC-2B')?.name, 'DC-2B');
  assert.equal(stripVendorPrefix('NVIDIA RTX Pro 6000 Blackwell DC-48Q\n'), 'DC-48Q');
  assert.equal(stripVendorPrefix('GRID T4-1Q'), 'T4-1Q');
  assert.equal(parseProfile('NVIDIA RTX Pro 6000 Blackwell'), undefined);
});

void test("parseProfile: the shapes of NVIDIA's vGPU 20 example config (Blackwell MIG-backed graphics, Ada boards, media attributes)", () => {
  const cases: [string, string, number | null, string, string | null][] = [
    ['DC-1-24CGFX', 'DC', 1, 'C', 'GFX'],
    ['DC-2-12QGFX', 'DC', 2, 'Q', 'GFX'],
    ['6000D-1-42CGFX', '6000D', 1, 'C', 'GFX'],
    ['6000D-2-84QGFX', '6000D', 2, 'Q', 'GFX'],
    ['RTX5000-Ada-16Q', 'RTX5000-Ada', null, 'Q', null],
    ['A30-1-6CME', 'A30', 1, 'C', 'ME'],
    ['GB200-1-23CNOME', 'GB200', 1, 'C', 'NOME'],
    ['B200-1-23CMEALL', 'B200', 1, 'C', 'MEALL'],
    ['DC-48Q', 'DC', null, 'Q', null],
  ];
  for (const [name, board, slices, series, attribute] of cases) {
    const p = parseProfile(name);
    assert.ok(p, name);
    assert.deepEqual([p.board, p.gpuInstanceSlices, p.series, p.attribute], [board, slices, series, attribute], name);
    assert.equal(isMigBacked(p), slices !== null, name);
    assert.ok(isNvidiaProfileShape(name), `${name} is NVIDIA-shaped`);
  }
});

void test("isNvidiaProfileShape is vgpu-device-manager's grammar: upper-case boards, no ME on time-sliced", () => {
  assert.ok(isNvidiaProfileShape('A100-1-5CME'));
  assert.ok(!isNvidiaProfileShape('A100-5CME'));
  assert.ok(!isNvidiaProfileShape('l40s-12Q'));
  assert.ok(!isNvidiaProfileShape('L40S-12X'));
  assert.ok(!isNvidiaProfileShape('L40S-012Q'));
});

const nameChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.+()/\n\0'.split(''));

void test('property: parseProfile never throws; a parse is consistent with its input and safe', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.array(nameChar, { maxLength: 40 }).map((c) => c.join(''))), (text) => {
      const p = parseProfile(text);
      if (!p) return;
      assert.ok(p.name.startsWith(`${p.board}-`));
      assert.ok(!/[^\x20-\x7e]|\/|\.\./.test(p.name), JSON.stringify(p.name));
      assert.ok(['Q', 'A', 'B', 'C'].includes(p.series));
      assert.ok(Number.isSafeInteger(p.framebufferGB));
    }),
    { numRuns: 2000 },
  );
});
