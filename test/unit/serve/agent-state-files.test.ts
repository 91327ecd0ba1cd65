/**
 * The agent's state file (issue 12, defects 2 and 4): its read is bounded (a
 * state file that is a link to /dev/zero hung the agent at boot), and a kill
 * at any point of a save leaves the previous state or the new one, never a
 * corrupt file, and the temporary file never follows a link planted at its name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STATE_FILE, StateStore, type Desired } from '../../../src/serve/agent/state.js';
import { runCrashingAfter } from '../../support/crash-fs.js';
import { runSnippet, src } from '../../support/child.js';
import { withScratch } from '../../support/scratch.js';

const desired = (configName: string): Desired => ({ workload: 'vm-vgpu', configName, configText: `version: v1\nvgpu-configs:\n  ${configName}: []\n`, fileName: 'config.yaml' });

void test('a state file that never ends is refused as too large, at once', async () => {
  await withScratch('vmgpu-state-', (dir) => {
    fs.symlinkSync('/dev/zero', path.join(dir, STATE_FILE));
    const r = runSnippet(`import { StateStore } from ${src('src/serve/agent/state.ts')};
try { new StateStore(${JSON.stringify(dir)}).load(); console.log('loaded'); } catch (e) { console.log(e.message); }`);
    assert.equal(r.timedOut, false, 'the read of /dev/zero did not end');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /cannot read the agent state .*: it holds more than 16 MiB/);
  });
});

void test('killed at any point of a save, the state is the previous one or the new one', async () => {
  await withScratch('vmgpu-state-', (dir) => {
    let k = 0;
    for (;;) {
      fs.rmSync(dir, { recursive: true, force: true });
      new StateStore(dir).save(desired('before'));
      const run = runCrashingAfter(k, () => new StateStore(dir).save(desired('after')));
      const now = new StateStore(dir).load();
      assert.ok(now?.configName === 'before' || now?.configName === 'after', `k=${k}: ${JSON.stringify(now)}`);
      if (!run.crashed) break;
      k++;
    }
    assert.ok(k >= 3, `a save makes ${k} changes`);
  });
});

void test('a link planted where the temporary file goes is not followed', async () => {
  await withScratch('vmgpu-state-', (dir) => {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious\n');
    const store = new StateStore(path.join(dir, 'state'));
    fs.mkdirSync(store.dir);
    // The old temporary name was predictable: <file>.tmp-<pid>.
    fs.symlinkSync(victim, `${store.file}.tmp-${process.pid}`);
    store.save(desired('x'));
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
    assert.equal(store.load()?.configName, 'x');
  });
});
