// deploy/systemd/vmgpu-apply.service: systemd accepts it (systemd-analyze verify, with the
// vmgpu binary path pointed at an existing program), and its restart policy follows vmgpu's
// exit codes: retry a failed step, never loop on bad input, no sysfs or an undetermined GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EXIT } from '../../../src/cli/exit-codes.js';

const unitPath = resolve(import.meta.dirname, '..', '..', '..', 'deploy', 'systemd', 'vmgpu-apply.service');
const text = readFileSync(unitPath, 'utf8');

/** `[Section]` -> key -> values (a key may repeat), comments dropped. */
function parseUnit(unit: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const head = /^\[(\w+)\]$/.exec(line);
    if (head) {
      current = new Map();
      sections.set(head[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `not a key=value line in a section: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const unit = parseUnit(text);
const get = (section: string, key: string): string[] => unit.get(section)?.get(key) ?? [];
const codes = (section: string, key: string): number[] => get(section, key).flatMap((v) => v.split(/\s+/)).map(Number);

void test('systemd-analyze verify accepts the unit', () => {
  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, 'systemd-analyze (package systemd) is needed to check the unit: install it');
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-unit-'));
  const copy = join(dir, 'vmgpu-apply.service');
  // verify checks that ExecStart's program exists; everything else is the shipped unit.
  writeFileSync(copy, text.replace(/^ExecStart=\/usr\/bin\/vmgpu /m, 'ExecStart=/bin/true '));
  const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
  assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`);
});

void test('a oneshot that runs vmgpu apply once per boot and retries only what can pass on its own', () => {
  assert.deepEqual(get('Service', 'Type'), ['oneshot']);
  assert.match(get('Service', 'ExecStart')[0]!, /^\/usr\/bin\/vmgpu apply /);
  assert.deepEqual(get('Service', 'Restart'), ['on-failure']);
  assert.deepEqual(codes('Service', 'SuccessExitStatus'), [EXIT.BLOCKED]);
  assert.deepEqual(codes('Service', 'RestartPreventExitStatus').sort(), [EXIT.BAD_INPUT, EXIT.NO_SYSFS, EXIT.UNDETERMINED].sort());
  assert.ok(!codes('Service', 'RestartPreventExitStatus').includes(EXIT.FAILURE), 'a failed step (exit 1) is retried');
  // Bounded: the guests ordered after it must start eventually.
  assert.ok(Number(get('Unit', 'StartLimitBurst')[0]) >= 2 && Number(get('Unit', 'StartLimitBurst')[0]) <= 10);
  assert.ok(get('Unit', 'StartLimitIntervalSec').length === 1);
  assert.ok(get('Service', 'RestartSec').length === 1);
});
