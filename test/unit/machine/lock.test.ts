/**
 * One writer per node: a second writer waits for the first or is refused
 * with a message naming it; a lock whose holder is gone is taken over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireNodeLock, NodeLockBusyError } from '../../../src/machine/lock.js';
import { selfIdentity } from '../../../src/sysfs/processes.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-lock-'));
}

void test('a second writer is refused at once with --wait 0, naming the holder; after release it gets the lock', async () => {
  const file = path.join(tmp(), 'node.lock');
  const first = await acquireNodeLock(file, { command: 'vmgpu agent', waitMs: 0 });
  await assert.rejects(acquireNodeLock(file, { command: 'vmgpu apply', waitMs: 0 }), (err: unknown) => {
    assert.ok(err instanceof NodeLockBusyError);
    assert.match(err.message, new RegExp(`being changed by vmgpu agent \\(PID ${process.pid}, since `));
    assert.match(err.message, /--wait DURATION/);
    return true;
  });
  first.release();
  const second = await acquireNodeLock(file, { command: 'vmgpu apply', waitMs: 0 });
  second.release();
  assert.ok(!fs.existsSync(file), 'release removes the lock');
});

void test('a waiting writer is told once and gets the lock when the holder releases it', async () => {
  const file = path.join(tmp(), 'node.lock');
  const first = await acquireNodeLock(file, { command: 'vmgpu apply', waitMs: 0 });
  let told = 0;
  const waiting = acquireNodeLock(file, { command: 'vmgpu agent', waitMs: 10_000, onWait: () => told++ });
  setTimeout(() => first.release(), 300);
  const second = await waiting;
  assert.equal(told, 1);
  second.release();
});

void test('the lock of a process that has ended is taken over', async () => {
  const file = path.join(tmp(), 'node.lock');
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.on('exit', r));
  const me = selfIdentity();
  fs.writeFileSync(file, JSON.stringify({ ...me, pid: child.pid, startTime: 1, command: 'vmgpu apply', since: 'then', token: 'dead' }));
  const lock = await acquireNodeLock(file, { command: 'vmgpu apply', waitMs: 0 });
  assert.notEqual(JSON.parse(fs.readFileSync(file, 'utf8')).token, 'dead');
  lock.release();
});

void test('a lock from an earlier boot is stale; one from another PID namespace is waited for, never broken', async () => {
  const dir = tmp();
  const me = selfIdentity();
  const old = path.join(dir, 'old.lock');
  fs.writeFileSync(old, JSON.stringify({ ...me, bootId: 'another-boot', command: 'vmgpu agent', since: 'then', token: 'old' }));
  (await acquireNodeLock(old, { command: 'vmgpu apply', waitMs: 0 })).release();
  const foreign = path.join(dir, 'foreign.lock');
  fs.writeFileSync(foreign, JSON.stringify({ ...me, pid: 1, pidNamespace: 'pid:[1]', command: 'vmgpu agent', since: 'then', token: 'f' }));
  await assert.rejects(acquireNodeLock(foreign, { command: 'vmgpu apply', waitMs: 300, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) }), NodeLockBusyError);
  assert.equal(JSON.parse(fs.readFileSync(foreign, 'utf8')).token, 'f', 'a lock that cannot be checked is left alone');
});
