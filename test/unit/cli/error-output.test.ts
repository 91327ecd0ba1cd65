/**
 * Issue 12, defect 5: error output. A megabyte-long key is quoted cut, not
 * whole; thousands of problems are shown up to a cap with a count of the
 * rest; YAML nested thousands deep is a positioned config error, not
 * "Maximum call stack size exceeded"; and both standard output and standard
 * error are flushed before exit, so a slow reader of either gets every byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../../src/spec/config.js';
import { parseConfig } from '../../../src/spec/load.js';
import { parseCozystackProfiles } from '../../../src/spec/cozystack.js';
import { describeRun, REPO, runCli } from './run-cli.js';

function withFile(name: string, text: string, f: (file: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-errout-'));
  try {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    f(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function rejected(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

void test('a 3.9 MB key is quoted cut, with its length', () => {
  const key = 'k'.repeat(3_900_000);
  withFile('long-key.yaml', `version: v1\nvgpu-configs:\n  a:\n    - devices: all\n      vgpu-devices: {"${key}": 1}\n`, (file) => {
    const r = runCli(['validate-config', '-f', file]);
    assert.equal(r.code, 2, describeRun(r));
    assert.ok(r.stderr.length < 2000, `stderr is ${r.stderr.length} bytes`);
    assert.match(r.stderr, /vgpu-devices: "k{80}"\.\.\. \(3900000 characters\) is not/);
  });
});

void test('thousands of problems: the first ones, then how many more', () => {
  const text = `version: v1\nvgpu-configs:\n  a:\n    - devices: all\n      vgpu-devices: {}\n${Array.from({ length: 20_000 }, (_, i) => `      bad${i}: 1`).join('\n')}\n`;
  const e = rejected(() => parseConfig(text, 'many.yaml'));
  assert.equal(e.problems.length, 20_000, 'every problem is kept for callers');
  const lines = e.message.split('\n');
  assert.equal(lines.length, 101, e.message.slice(0, 500));
  assert.equal(lines[100], 'many.yaml: ... and 19900 more problems (fix these and run again)');
  // The Cozystack importer too: one line listed twice, ten thousand times.
  const dup = Array.from({ length: 10_000 }, () => '0000:18:00.4=557').join('\n');
  const c = rejected(() => parseCozystackProfiles(dup, 'dup.txt'));
  assert.equal(c.message.split('\n').length, 101);
  assert.match(c.message, /dup\.txt: \.\.\. and 9899 more problems/);
});

void test('YAML nested thousands deep is one positioned config error', () => {
  for (const [name, text, line] of [
    ['flow', `version: v1\nvgpu-configs: ${'['.repeat(5000)}${']'.repeat(5000)}\n`, 2],
    ['block', `version: v1\nvgpu-configs:\n${Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n')}\n`, 66],
  ] as const) {
    const e = rejected(() => parseConfig(text, `${name}.yaml`));
    assert.equal(e.problems.length, 1, e.message.slice(0, 300));
    const p = e.problems[0]!;
    assert.equal(p.line, line, `${name}: ${e.message}`);
    assert.match(p.message, /^the YAML nests deeper than 64 levels here; a config nests about 6/);
    assert.doesNotMatch(e.message, /call stack/);
  }
});

void test('both stdout and stderr are flushed before exit, even to slow readers', () => {
  const script = `import { flushAndExit } from ${JSON.stringify(path.join(REPO, 'src/cli/output.ts'))};
process.stdout.write('o'.repeat(300000) + '\\n');
process.stderr.write('e'.repeat(300000) + '\\n');
flushAndExit(3);`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-flush-'));
  try {
    // One stream to a file (written at once), the other to a reader that starts a second late.
    const cases = [
      ['stderr slow', `"$@" > "${dir}/out" 2> >(sleep 1; cat > "${dir}/err"); echo $? > "${dir}/code"; sleep 1.5`],
      ['stdout slow', `"$@" 2> "${dir}/err" | (sleep 1; cat > "${dir}/out"); echo "\${PIPESTATUS[0]}" > "${dir}/code"; sleep 1.5`],
    ];
    for (const [name, sh] of cases) {
      const r = spawnSync('/bin/bash', ['-c', sh!, 'bash', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, timeout: 30_000 });
      assert.equal(r.error, undefined);
      assert.equal(fs.readFileSync(path.join(dir, 'code'), 'utf8').trim(), '3', name);
      assert.equal(fs.readFileSync(path.join(dir, 'out'), 'utf8').length, 300001, `${name}: stdout complete`);
      assert.equal(fs.readFileSync(path.join(dir, 'err'), 'utf8').length, 300001, `${name}: stderr complete`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
