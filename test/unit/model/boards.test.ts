import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBoards, boardForDevice, boardForProfile, profileFact } from '../../../src/model/boards.js';
import { isMigBacked, parseProfile, stripVendorPrefix } from '../../../src/model/profile.js';

void test('every board the issue requires is present, with the documented framework', () => {
  const want: Record<string, ['sriov' | 'mdev', string]> = {
    L4: ['sriov', '27b8'],
    L40: ['sriov', '26b5'],
    L40S: ['sriov', '26b9'],
    'RTX6000-Ada': ['sriov', '26b1'],
    H100: ['sriov', '2331'],
    H100XM: ['sriov', '2330'],
    H200X: ['sriov', '2335'],
    H200: ['sriov', '233b'],
    A100: ['mdev', '20f1'],
    A100D: ['mdev', '20b5'],
    A10: ['mdev', '2236'],
    A16: ['mdev', '25b6'],
    T4: ['mdev', '1eb8'],
  };
  for (const [board, [framework, dev]] of Object.entries(want)) {
    const b = boardForDevice(dev);
    assert.ok(b, `no board for device ${dev}`);
    assert.equal(b.board, board, `device ${dev}`);
    assert.equal(b.framework, framework, board);
  }
});

void test('L40S facts match NVIDIA: 48 GB, 32 VFs, Q sizes 1..48 with 32/24/16/12/8/6/4/3/2/1', () => {
  const b = boardForDevice('26b9')!;
  assert.equal(b.framebufferMiB, 48 * 1024);
  assert.equal(b.maxVfs, 32);
  const q = b.profiles.filter((p) => p.series === 'Q').map((p) => [p.profile, p.maxInstances]);
  assert.deepEqual(q, [
    ['L40S-1Q', 32], ['L40S-2Q', 24], ['L40S-3Q', 16], ['L40S-4Q', 12], ['L40S-6Q', 8],
    ['L40S-8Q', 6], ['L40S-12Q', 4], ['L40S-16Q', 3], ['L40S-24Q', 2], ['L40S-48Q', 1],
  ]);
  assert.equal(profileFact('L40S-24Q')?.framebufferMiB, 24 * 1024);
});

void test('profile facts are internally consistent on every board', () => {
  const seen = new Set<string>();
  for (const b of allBoards()) {
    assert.ok(b.source.length > 20, `${b.board} names its source`);
    assert.ok(b.deviceIds.every((d) => /^[0-9a-f]{4}$/.test(d)), `${b.board} device ids`);
    assert.equal(b.maxVfs === null, b.framework === 'mdev' && !b.mdevOnVfs, `${b.board}: SR-IOV iff maxVfs`);
    for (const p of b.profiles) {
      assert.ok(!seen.has(p.profile), `duplicate profile ${p.profile}`);
      seen.add(p.profile);
      assert.ok(p.profile.startsWith(`${b.board}-`), p.profile);
      assert.ok(p.maxInstances >= 1, p.profile);
      // Time-sliced instances never overcommit the framebuffer; MIG slices never exceed 7.
      if (!p.migBacked) assert.ok(p.maxInstances * p.framebufferMiB <= b.framebufferMiB, `${p.profile} overcommits`);
      else assert.ok(p.maxInstances <= 7, p.profile);
      if (b.maxVfs !== null) assert.ok(p.maxInstances <= b.maxVfs, `${p.profile} exceeds the VF count`);
      // The name grammar agrees with the facts.
      const parsed = parseProfile(`NVIDIA ${p.profile}`);
      assert.ok(parsed, `${p.profile} parses`);
      assert.equal(parsed.board, b.board, p.profile);
      assert.equal(parsed.series, p.series, p.profile);
      assert.equal(isMigBacked(parsed), p.migBacked, p.profile);
      assert.equal(parsed.framebufferGB * 1024, p.framebufferMiB, p.profile);
    }
  }
});

void test('Hopper and A100 boards offer only C profiles, MIG-backed ones included', () => {
  for (const dev of ['2331', '2330', '2321', '2335', '233b', '20f1', '20b5']) {
    const b = boardForDevice(dev)!;
    assert.ok(b.profiles.every((p) => p.series === 'C'), b.board);
    assert.ok(b.profiles.some((p) => p.migBacked), b.board);
  }
  assert.deepEqual(profileFact('A100-1-5C'), { profile: 'A100-1-5C', framebufferMiB: 5120, maxInstances: 7, series: 'C', migBacked: true });
  assert.equal(profileFact('NVIDIA H200X-1-18C')?.migBacked, true);
  assert.equal(profileFact('A100D-4-40C')?.maxInstances, 1);
});

void test('profileFact accepts the driver prefixes and any case; rejects the unknown', () => {
  assert.equal(profileFact('NVIDIA L40S-12Q')?.maxInstances, 4);
  assert.equal(profileFact('GRID T4-1Q')?.maxInstances, 16);
  assert.equal(profileFact('  grid t4-1q \n')?.profile, 'T4-1Q');
  assert.equal(profileFact('L40S-13Q'), undefined);
  assert.equal(profileFact(''), undefined);
  assert.equal(profileFact(undefined as unknown as string), undefined);
  assert.equal(stripVendorPrefix('NVIDIA RTX6000-Ada-4Q'), 'RTX6000-Ada-4Q');
});

void test('boardForProfile: known profiles, unknown sizes by longest prefix, and no false matches', () => {
  assert.equal(boardForProfile('L40S-12Q')?.board, 'L40S');
  assert.equal(boardForProfile('NVIDIA L40-12Q')?.board, 'L40');
  assert.equal(boardForProfile('RTX6000-Ada-7Q')?.board, 'RTX6000-Ada');
  assert.equal(boardForProfile('A100D-99C')?.board, 'A100D');
  assert.equal(boardForProfile('A100DX-80C')?.board, 'A100DX');
  assert.equal(boardForProfile('L40SX-1Q'), undefined);
  assert.equal(boardForProfile('V100-1Q'), undefined);
});

void test('boardForDevice normalises IDs and uses the subsystem to tell A16 from A2', () => {
  assert.equal(boardForDevice('0x26B9')?.board, 'L40S');
  assert.equal(boardForDevice('25b6')?.board, 'A16');
  assert.equal(boardForDevice('25b6', '14a9')?.board, 'A16');
  assert.equal(boardForDevice('25b6', '0x157E')?.board, 'A2');
  assert.equal(boardForDevice('ffff'), undefined);
});
