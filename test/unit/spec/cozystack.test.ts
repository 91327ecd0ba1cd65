import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../../src/spec/config.js';
import { cozystackToConfig, parseCozystackLines, parseCozystackProfiles, type CozystackResolver } from '../../../src/spec/cozystack.js';
import { serializeConfig } from '../../../src/spec/serialize.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/configs/${name}`, import.meta.url), 'utf8');

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

/**
 * A node with two L40S: PFs 0000:3b:00.0 and 0000:5e:00.0, VFs at function
 * 4.. of the same device (VF index = function - 4). IDs 1154/1155 are
 * L40S-12Q/L40S-24Q on this (pretend) driver.
 */
const NAMES: Record<number, string> = { 1153: 'NVIDIA L40S-6Q', 1154: 'NVIDIA L40S-12Q', 1155: 'NVIDIA L40S-24Q' };
const resolve: CozystackResolver = (busId, id) => {
  const m = /^0000:(3b|5e):00\.([4-7])$/.exec(busId);
  if (!m) return { error: `no VF ${busId} on this node` };
  if (id !== 0 && !(id in NAMES)) return { error: `type ID ${id} is not in creatable_vgpu_types of ${busId}` };
  return { pf: `0000:${m[1]}:00.0`, vfIndex: Number(m[2]) - 4, profile: id === 0 ? null : NAMES[id]! };
};

test('plain profiles text: comments, blank lines, whitespace and short bus IDs', () => {
  const ls = parseCozystackProfiles(fixture('cozystack-profiles.txt'), 'profiles');
  assert.deepEqual(ls, [
    { busId: '0000:3b:00.4', profileId: 1155, file: 'profiles', line: 2, column: 1 },
    { busId: '0000:3b:00.5', profileId: 1155, file: 'profiles', line: 3, column: 3 },
    { busId: '0000:3b:00.6', profileId: 0, file: 'profiles', line: 5, column: 1 },
  ]);
});

test('the whole ConfigMap YAML (with a second document) is accepted; lines point into the file', () => {
  const ls = parseCozystackProfiles(fixture('cozystack-configmap.yaml'), 'cm.yaml');
  assert.deepEqual(
    ls.map((l) => [l.busId, l.profileId, l.line, l.column]),
    [
      ['0000:3b:00.4', 1155, 11, 5],
      ['0000:3b:00.5', 1155, 12, 5],
      ['0000:5e:00.5', 1154, 14, 5],
      ['0000:5e:00.7', 1154, 15, 5],
    ],
  );
});

test('malformed lines are all reported with their line numbers; path characters never pass', () => {
  const text = ['# header', '0000:3b:00.4=<profile-id>', 'no equals sign', '../../../sys/x=5', '0000:3b:00.4=7', '0000:3b:00.5=12ab', '3b:00.4=9', ''].join('\n');
  const err = errorOf(() => parseCozystackProfiles(text, 'profiles'));
  assert.deepEqual(
    err.problems.map((p) => [p.line, p.column, p.path]),
    [
      [2, 1, '0000:3b:00.4'],
      [3, 1, ''],
      [4, 1, ''],
      [6, 1, '0000:3b:00.5'],
      [7, 1, '0000:3b:00.4'],
    ],
  );
  assert.match(err.problems[0]!.message, /profile ID "<profile-id>" is not a number/);
  assert.match(err.problems[1]!.message, /"no equals sign" is not a <bus-id>=<profile-id> line/);
  assert.match(err.problems[2]!.message, /"\.\.\/\.\.\/\.\.\/sys\/x" is not a PCI bus ID/);
  assert.match(err.problems[4]!.message, /listed twice \(first on line 5\)/);
  assert.match(err.message, /^profiles:2:1: 0000:3b:00\.4: profile ID/);
});

test('an empty list, a ConfigMap without data.profiles, and a non-literal profiles value', () => {
  assert.match(errorOf(() => parseCozystackProfiles('# nothing\n\n', 'p')).message, /no <bus-id>=<profile-id> lines found/);
  assert.match(
    errorOf(() => parseCozystackProfiles('apiVersion: v1\nkind: ConfigMap\ndata:\n  other: x\n', 'cm.yaml')).message,
    /no ConfigMap with data\.profiles/,
  );
  // A double-quoted value folds lines: problems point at the value and name the line inside it.
  const err = errorOf(() => parseCozystackProfiles('kind: ConfigMap\ndata:\n  profiles: "0000:3b:00.4=1\\nbad"\n', 'cm.yaml'));
  assert.deepEqual([err.problems[0]!.line, err.problems[0]!.column], [3, 13]);
  assert.match(err.problems[0]!.message, /^line 2 of data\.profiles: "bad" is not a <bus-id>=<profile-id> line/);
});

test('cozystackToConfig: natural placement becomes plain counts; anything else keeps vf-placement', () => {
  const ls = parseCozystackProfiles(fixture('cozystack-configmap.yaml'), 'cm.yaml');
  const f = cozystackToConfig(ls, resolve, 'cozystack');
  assert.equal(
    serializeConfig(f),
    [
      'version: v1',
      'vgpu-configs:',
      '  cozystack:',
      '    - devices: all',
      '      pci-addresses: ["0000:3b:00.0"]',
      '      vgpu-devices:',
      '        "L40S-24Q": 2',
      '    - devices: all',
      '      pci-addresses: ["0000:5e:00.0"]',
      '      vgpu-devices:',
      '        "L40S-12Q": 2',
      '      vf-placement:',
      '        "L40S-12Q": [1, 3]',
      '',
    ].join('\n'),
  );
});

test('cozystackToConfig: mixed sizes on one GPU turn mixed-sizes on; ID 0 lines leave a GPU with no vGPUs', () => {
  const text = ['0000:3b:00.4=1153', '0000:3b:00.5=1155', '0000:5e:00.4=0', ''].join('\n');
  const f = cozystackToConfig(parseCozystackProfiles(text, 'p'), resolve, 'mixed');
  const [a, b] = f.configs[0]!.entries;
  assert.deepEqual(a!.vgpuDevices.map((d) => [d.profile, d.count]), [
    ['L40S-6Q', 1],
    ['L40S-24Q', 1],
  ]);
  assert.deepEqual(a!.vfPlacement, {});
  assert.equal(a!.mixedSizes, true);
  assert.deepEqual(b!.pciAddresses, ['0000:5e:00.0']);
  assert.deepEqual(b!.vgpuDevices, []);
  // Interleaved types are not the natural layout: every VF is kept where it is.
  const inter = cozystackToConfig(parseCozystackProfiles('0000:3b:00.4=1154\n0000:3b:00.5=1155\n0000:3b:00.6=1154\n', 'p'), resolve, 'x');
  assert.deepEqual(inter.configs[0]!.entries[0]!.vfPlacement, { 'L40S-12Q': [0, 2], 'L40S-24Q': [1] });
});

test('cozystackToConfig: every line the resolver rejects is reported at its line; nothing is produced', () => {
  const text = ['0000:3b:00.4=1155', '0000:99:00.4=1155', '0000:3b:00.5=4242', '0000:5e:00.4=1154', ''].join('\n');
  const err = errorOf(() => cozystackToConfig(parseCozystackProfiles(text, 'profiles'), resolve, 'c'));
  assert.deepEqual(
    err.problems.map((p) => [p.line, p.path, p.message]),
    [
      [2, '0000:99:00.4', 'no VF 0000:99:00.4 on this node'],
      [3, '0000:3b:00.5', 'type ID 4242 is not in creatable_vgpu_types of 0000:3b:00.5'],
    ],
  );
});

test('cozystackToConfig validates what the resolver returns, and the config name', () => {
  const ls = parseCozystackProfiles('0000:3b:00.4=1155\n', 'p');
  assert.match(errorOf(() => cozystackToConfig(ls, () => ({ pf: '../x', vfIndex: 0, profile: 'L40S-24Q' }), 'c')).message, /invalid PF address "\.\.\/x"/);
  assert.match(errorOf(() => cozystackToConfig(ls, () => ({ pf: '3b:00.0', vfIndex: -1, profile: 'L40S-24Q' }), 'c')).message, /invalid VF index -1/);
  assert.match(errorOf(() => cozystackToConfig(ls, () => ({ pf: '3b:00.0', vfIndex: 0, profile: '1155' }), 'c')).message, /profile IDs change between driver versions/);
  assert.match(errorOf(() => cozystackToConfig(ls, () => ({ pf: '3b:00.0', vfIndex: 0, profile: null }), 'c')).message, /has no name on this VF/);
  assert.match(
    errorOf(() =>
      cozystackToConfig(ls, () => {
        throw new Error('sysfs unreadable');
      }, 'c'),
    ).message,
    /cannot resolve: sysfs unreadable/,
  );
  assert.match(errorOf(() => cozystackToConfig(ls, resolve, 'bad name')).message, /not a valid config name/);
  // Two bus IDs that are the same VF (the resolver says so) are refused.
  const two = parseCozystackProfiles('0000:3b:00.4=1155\n0000:3b:00.5=1155\n', 'p');
  const err = errorOf(() => cozystackToConfig(two, () => ({ pf: '0000:3b:00.0', vfIndex: 0, profile: 'L40S-24Q' }), 'c'));
  assert.equal(err.problems[0]!.line, 2);
  assert.match(err.problems[0]!.message, /is VF 0 of 0000:3b:00\.0, like line 1/);
});

test('one pass: malformed lines, duplicates and lines the node rejects are all reported together, in line order', () => {
  const text = ['0000:3b:00.4=1155', 'garbage', '0000:99:00.4=1155', '0000:3b:00.5=4242', '0000:3b:00.6=abc', '0000:3b:00.4=1154', '0000:5e:00.4=1154', ''].join('\n');
  const parsed = parseCozystackLines(text, 'profiles');
  assert.deepEqual(parsed.lines.map((l) => l.line), [1, 3, 4, 7]);
  const err = errorOf(() => cozystackToConfig(parsed.lines, resolve, 'c', parsed.error));
  assert.equal(err.filename, 'profiles');
  assert.deepEqual(
    err.problems.map((p) => [p.line, p.message.replace(/[,:(].*/, '')]),
    [
      [2, '"garbage" is not a <bus-id>=<profile-id> line'],
      [3, 'no VF 0000'],
      [4, 'type ID 4242 is not in creatable_vgpu_types of 0000'],
      [5, 'profile ID "abc" is not a number'],
      [6, 'listed twice '],
    ],
  );
  assert.throws(() => parseCozystackProfiles(text, 'profiles'), (e: unknown) => e instanceof ConfigError && e.problems.length === 3);
});

test('one pass: a file of only bad lines is reported as the parse found it', () => {
  const parsed = parseCozystackLines('bad\n0000:3b:00.4=x\n', 'p');
  assert.deepEqual(parsed.lines, []);
  assert.deepEqual(parsed.error?.problems.map((p) => p.line), [1, 2]);
  assert.deepEqual(errorOf(() => cozystackToConfig(parsed.lines, resolve, 'c', parsed.error)).problems.map((p) => p.line), [1, 2]);
});
