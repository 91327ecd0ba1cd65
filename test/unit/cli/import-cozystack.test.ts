/**
 * `vmgpu import cozystack` reports every problem of a file in one run: lines
 * it cannot read and lines the node rejects alike, each with file:line and the
 * fix, exit 2, nothing on standard output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Inventory } from '../../../src/inventory/types.js';
import { describeRun, runCli } from './run-cli.js';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-import-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

void test('import cozystack: every problem of the file in one run', () => {
  const node = path.join(TMP, 'node');
  const made = runCli(['sim', 'create', '--out', node, '--model', 'L40S', '--gpus', '1']);
  assert.equal(made.code, 0, describeRun(made));
  const d = runCli(['discover', '--json', '--simulate', node]);
  assert.equal(d.code, 0, describeRun(d));
  const g = (JSON.parse(d.stdout) as Inventory).gpus[0]!;
  const [vf0, vf1, vf2] = g.pci.sriov!.vfs;
  const id = g.catalog.find((t) => t.profile === 'L40S-24Q')!.id;
  const file = path.join(TMP, 'profiles.txt');
  fs.writeFileSync(file, [`${vf0}=${id}`, 'garbage', `0000:99:00.4=${id}`, `${vf1}=424242`, `${vf2}=abc`, `${vf0}=${id}`, ''].join('\n'));

  const r = runCli(['import', 'cozystack', file, '--simulate', node]);
  assert.equal(r.code, 2, describeRun(r));
  assert.equal(r.stdout, '');
  const want = [
    /profiles\.txt:2:1: .*"garbage" is not a <bus-id>=<profile-id> line, e\.g\./,
    /profiles\.txt:3:1: .*0000:99:00\.4 is not a VF of any NVIDIA GPU on this node \(are the VFs enabled\?\)/,
    /profiles\.txt:4:1: .*profile ID 424242 is not a vGPU type of L40S .*\(known: /,
    /profiles\.txt:5:1: .*profile ID "abc" is not a number: expected the numeric vGPU type ID/,
    /profiles\.txt:6:1: .*listed twice \(first on line 1\); keep one line per VF/,
  ];
  for (const w of want) assert.match(r.stderr, w);
});
