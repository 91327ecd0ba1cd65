import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allBoards, boardForDevice, boardProfile, boardsForDevice, boardsForProfile, profileFact } from '../../../src/model/boards.js';
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
  const devices = new Set<string>();
  for (const b of allBoards()) {
    assert.ok(b.source.length > 20, `${b.board} names its source`);
    assert.ok(b.deviceIds.every((d) => /^[0-9a-f]{4}$/.test(d)), `${b.board} device ids`);
    // Boards may share a device ID only when the subsystem tells them apart (A16/A2).
    for (const d of b.deviceIds) {
      if (devices.has(d)) assert.ok(b.subsystemDeviceIds?.length, `${b.board}: device ${d} is another board's too`);
      devices.add(d);
    }
    assert.equal(b.maxVfs === null, b.framework === 'mdev' && !b.mdevOnVfs, `${b.board}: SR-IOV iff maxVfs`);
    assert.equal(new Set(b.profiles.map((p) => p.profile)).size, b.profiles.length, `${b.board}: a profile listed twice`);
    for (const p of b.profiles) {
      assert.ok(p.profile.startsWith(`${b.board}-`), p.profile);
      assert.ok(p.maxInstances >= 1, p.profile);
      // No profile overcommits the framebuffer (MIG-backed names round the instance's memory up:
      // H100L-1-24C is a quarter of 94 GB); MIG-backed ones need the board's MIG and fit its slices.
      assert.ok(p.maxInstances * p.framebufferMiB <= b.framebufferMiB * (p.migBacked ? 1.05 : 1), `${p.profile} overcommits`);
      if (p.migBacked) assert.ok(b.migSlices !== null && parseProfile(p.profile)!.gpuInstanceSlices! <= b.migSlices, `${p.profile}: ${b.board} has ${b.migSlices} MIG slices`);
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

void test('boardsForProfile: boards offering the name, else by the longest prefix, and no false matches', () => {
  const boards = (p: string) => boardsForProfile(p).map((b) => b.model);
  assert.deepEqual(boards('L40S-12Q'), ['NVIDIA L40S']);
  assert.deepEqual(boards('NVIDIA L40-12Q'), ['NVIDIA L40']);
  assert.deepEqual(boards('RTX6000-Ada-7Q'), ['NVIDIA RTX 6000 Ada Generation']);
  assert.deepEqual(boards('A100D-99C'), ['NVIDIA A100 80GB PCIe']);
  assert.deepEqual(boards('A100DX-80C'), ['NVIDIA A100 SXM4 80GB']);
  assert.deepEqual(boards('L40SX-1Q'), []);
  assert.deepEqual(boards('V100-1Q'), []);
  // Two Blackwell boards share the DC prefix.
  assert.deepEqual(boards('DC-16Q'), ['NVIDIA RTX PRO 6000 Blackwell Server Edition', 'NVIDIA RTX PRO 4500 Blackwell Server Edition']);
  assert.deepEqual(boards('DC-2-8C'), ['NVIDIA RTX PRO 4500 Blackwell Server Edition']);
  assert.deepEqual(boards('DC-2-48QGFX'), ['NVIDIA RTX PRO 6000 Blackwell Server Edition']);
  assert.deepEqual(boards('DC-99Q'), ['NVIDIA RTX PRO 6000 Blackwell Server Edition', 'NVIDIA RTX PRO 4500 Blackwell Server Edition']);
});

void test("the Blackwell boards of NVIDIA's example, by the device IDs of its default config", () => {
  const want: [string, string, string, number, number][] = [
    ['2bb5', 'DC', 'NVIDIA RTX PRO 6000 Blackwell Server Edition', 96, 4],
    ['2bb9', '6000D', 'NVIDIA RTX 6000D', 84, 2],
    ['2c3a', 'DC', 'NVIDIA RTX PRO 4500 Blackwell Server Edition', 32, 2],
    ['2901', 'B200X', 'NVIDIA B200', 180, 7],
    ['2941', 'GB200', 'NVIDIA GB200', 189, 7],
  ];
  for (const [dev, board, model, gb, slices] of want) {
    const b = boardForDevice(dev)!;
    assert.deepEqual([b.board, b.model, b.framework, b.framebufferMiB / 1024, b.migSlices], [board, model, 'sriov', gb, slices], dev);
    assert.ok(b.profiles.some((p) => p.migBacked) && b.profiles.some((p) => !p.migBacked), `${dev}: time-sliced and MIG-backed profiles`);
  }
  const pro6000 = boardForDevice('2bb5')!;
  assert.equal(boardProfile(pro6000, 'DC-48Q')?.maxInstances, 2);
  assert.equal(boardProfile(pro6000, 'DC-1-2Q')?.maxInstances, 48, 'time-sliced inside four 1g.24gb instances');
  assert.equal(boardProfile(boardForDevice('2901')!, 'B200X-1-23CME')?.maxInstances, 1);
  assert.equal(boardProfile(boardForDevice('2bb9')!, '6000D-84Q')?.maxInstances, 1);
});

void test('a name two boards offer differently has no card-free fact; the device tells them apart', () => {
  assert.equal(profileFact('DC-16Q'), undefined, 'six fit on an RTX PRO 6000, two on a 4500');
  assert.equal(boardProfile(boardForDevice('2bb5')!, 'DC-16Q')?.maxInstances, 6);
  assert.equal(boardProfile(boardForDevice('2c3a')!, 'DC-16Q')?.maxInstances, 2);
  assert.equal(profileFact('DC-2-48Q')?.maxInstances, 2, 'only the 6000 offers it');
  assert.equal(boardProfile(boardForDevice('2c3a')!, 'DC-2-48Q'), undefined);
  assert.deepEqual(boardsForDevice('25b6').map((b) => b.board), ['A16', 'A2']);
});

void test("MIG attributes: the exact name first, else the driver's type without it, as NVIDIA's device manager does", () => {
  const pro6000 = boardForDevice('2bb5')!;
  assert.equal(boardProfile(pro6000, 'DC-1-24QGFX')?.profile, 'DC-1-24Q');
  assert.equal(boardProfile(pro6000, 'NVIDIA DC-4-96CGFX')?.profile, 'DC-4-96C');
  assert.equal(profileFact('6000D-2-84QGFX')?.profile, '6000D-2-84Q');
  assert.equal(boardProfile(boardForDevice('20f1')!, 'A100-1-5CME')?.maxInstances, 1, 'ME is a type of its own on A100');
  assert.equal(boardProfile(pro6000, 'DC-48QGFX'), undefined, 'time-sliced names carry no MIG attribute');
});

void test('boardForDevice normalises IDs and uses the subsystem to tell A16 from A2', () => {
  assert.equal(boardForDevice('0x26B9')?.board, 'L40S');
  assert.equal(boardForDevice('25b6')?.board, 'A16');
  assert.equal(boardForDevice('25b6', '14a9')?.board, 'A16');
  assert.equal(boardForDevice('25b6', '0x157E')?.board, 'A2');
  assert.equal(boardForDevice('ffff'), undefined);
});
