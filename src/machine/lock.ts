/**
 * One writer per node: every command that changes GPUs (`vmgpu apply`, the
 * agent's reconcile) holds this lock while it writes, so an admin's apply and
 * the agent, or two admins, never interleave their writes.
 *
 * The lock is a file created with O_EXCL, holding the holder's identity. A
 * lock whose holder is gone (process ended, PID reused, earlier boot) is
 * taken over; one whose holder runs, or cannot be checked from here (another
 * PID namespace), is waited for, up to a deadline, then refused with a message
 * naming the holder.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname as dirnameOf, join } from 'node:path';
import { processRuns, selfIdentity, type ProcessIdentity } from '../sysfs/processes.js';

export interface LockHolder extends ProcessIdentity {
  command: string;
  since: string;
  token: string;
}

export class NodeLockBusyError extends Error {
  override readonly name = 'NodeLockBusyError';
  constructor(
    readonly path: string,
    readonly holder: LockHolder | null,
    waitedMs: number,
  ) {
    const who = holder ? `${holder.command} (PID ${holder.pid}, since ${holder.since})` : 'another vmgpu process';
    super(
      `the node is being changed by ${who}: ${path} is locked` +
        (waitedMs > 0 ? ` (waited ${Math.round(waitedMs / 1000)} s)` : '') +
        '. Run again when it has finished, or pass --wait DURATION to wait longer. If no vmgpu process is running (check with ps), remove the lock file.',
    );
  }
}

export interface LockOptions {
  /** What takes the lock, for the message another writer sees: `vmgpu apply`, `vmgpu agent`. */
  command: string;
  /** How long to wait for a running holder (0: fail at once). */
  waitMs: number;
  /** Told once when the lock is busy and the wait begins. */
  onWait?: (holder: LockHolder | null) => void;
  sleep?: (ms: number) => Promise<void>;
}

export interface NodeLock {
  release(): void;
}

const MAX_LOCK_BYTES = 4096;
const SYSFS_MAGIC = 0x62656572;

/**
 * Where a node's lock lives: a live node's in its state dir (shared by the
 * agent and an admin's apply), a directory tree's or a simulated node's in
 * its directory. Computed from the location alone, so a command can lock
 * before it reads anything.
 */
export function nodeLockPath(where: { simulateDir: string } | { sysRoot: string; stateDir: string }): string {
  if ('simulateDir' in where) return join(where.simulateDir, '.vmgpu-node.lock');
  return isSysfsMount(where.sysRoot) ? join(where.stateDir, 'node.lock') : join(dirnameOf(where.sysRoot), '.vmgpu-node.lock');
}

function isSysfsMount(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === SYSFS_MAGIC;
  } catch {
    return false;
  }
}

export async function acquireNodeLock(path: string, opts: LockOptions): Promise<NodeLock> {
  fs.mkdirSync(dirnameOf(path), { recursive: true, mode: 0o755 });
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const me: LockHolder = { ...selfIdentity(), command: opts.command, since: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  const start = Date.now();
  let told = false;
  for (;;) {
    if (tryCreate(path, me)) return held(path, me.token);
    const holder = readHolder(path);
    if (holder === undefined) continue; // released meanwhile
    if (holder !== null && processRuns(holder) === false) {
      takeOver(path, holder.token);
      continue;
    }
    const waited = Date.now() - start;
    if (waited >= opts.waitMs) throw new NodeLockBusyError(path, holder, waited);
    if (!told) opts.onWait?.(holder);
    told = true;
    await sleep(Math.min(200, opts.waitMs - waited));
  }
}

function tryCreate(path: string, me: LockHolder): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot create the node lock ${path}: ${(err as Error).message} (is the state directory writable?)`, { cause: err });
  }
  try {
    fs.writeSync(fd, JSON.stringify(me));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** The holder's identity; undefined when the lock is gone, null when it cannot be read (being written, or foreign). */
function readHolder(path: string): LockHolder | null | undefined {
  let text: string;
  try {
    const fd = fs.openSync(path, 'r');
    try {
      const buf = Buffer.alloc(MAX_LOCK_BYTES);
      text = buf.toString('utf8', 0, fs.readSync(fd, buf, 0, buf.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    return typeof v.pid === 'number' && typeof v.token === 'string' ? (v as LockHolder) : null;
  } catch {
    return null;
  }
}

/** Remove a stale lock, unless someone else took it over first (only one rename of it succeeds). */
function takeOver(path: string, token: string): void {
  const aside = `${path}.stale-${token}-${process.pid}`;
  try {
    fs.renameSync(path, aside);
  } catch {
    return;
  }
  const moved = readHolder(aside);
  if (moved && moved.token !== token) {
    // Not the stale lock we judged: someone took over and locked in between. Put it back.
    try {
      fs.linkSync(aside, path);
    } catch {
      // the slot is taken again; that holder wins
    }
  }
  fs.rmSync(aside, { force: true });
}

function held(path: string, token: string): NodeLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.removeListener('exit', release);
    if (readHolder(path)?.token === token) fs.rmSync(path, { force: true });
  };
  process.once('exit', release);
  return { release };
}
