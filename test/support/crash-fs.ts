/**
 * A process killed at an exact point of its file-system work, in process:
 * every call of a node:fs function that changes something (open for
 * writing, write, truncate, rename, unlink, mkdir, symlink, ...) counts as
 * one step, and from step `k + 1` on every such call throws Crash instead of
 * running, as if the process had died after its k-th change. What the disk
 * holds then is exactly what a SIGKILL at that point would leave.
 *
 * The patch goes through node:fs's CommonJS object and syncBuiltinESMExports,
 * so the ES module bindings the code under test imports see it too.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

class Crash extends Error {
  override readonly name = 'Crash';
}

const MUTATING = [
  'writeSync',
  'writeFileSync',
  'appendFileSync',
  'ftruncateSync',
  'truncateSync',
  'renameSync',
  'unlinkSync',
  'rmSync',
  'rmdirSync',
  'mkdirSync',
  'mkdtempSync',
  'symlinkSync',
  'linkSync',
  'fchmodSync',
  'chmodSync',
  'copyFileSync',
] as const;

const WRITE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND;

function opensForWriting(flags: unknown): boolean {
  if (typeof flags === 'number') return (flags & WRITE_FLAGS) !== 0;
  return typeof flags === 'string' && flags !== 'r' && flags !== 'rs' && flags !== 'sr';
}

export interface CrashCounter {
  /** Changes made so far (before the crash, when there was one). */
  readonly steps: number;
  readonly crashed: boolean;
}

/**
 * Run `f` with the file system dying after `k` changes (k = Infinity: never,
 * to count the changes a run makes). Returns the counter; Crash thrown by `f`
 * is caught, any other error propagates.
 */
export function runCrashingAfter(k: number, f: () => void): CrashCounter {
  const { state, restore } = patch(k);
  try {
    f();
  } catch (err) {
    if (!(err instanceof Crash) && !(state.crashed && isWrappedCrash(err))) throw err;
  } finally {
    restore();
  }
  return state;
}

/** As runCrashingAfter, for async work (nothing else may run meanwhile: the patch is process-wide). */
export async function runCrashingAfterAsync(k: number, f: () => Promise<unknown>): Promise<CrashCounter> {
  const { state, restore } = patch(k);
  try {
    await f();
  } catch (err) {
    if (!(err instanceof Crash) && !(state.crashed && isWrappedCrash(err))) throw err;
  } finally {
    restore();
  }
  return state;
}

function patch(k: number): { state: { steps: number; crashed: boolean }; restore: () => void } {
  const state = { steps: 0, crashed: false };
  const originals = new Map<string, unknown>();
  const fsAny = fs as unknown as Record<string, (...args: unknown[]) => unknown>;
  const step = () => {
    if (state.crashed || state.steps >= k) {
      state.crashed = true;
      throw new Crash(`killed after ${state.steps} file-system change(s)`);
    }
    state.steps++;
  };
  for (const name of MUTATING) {
    const orig = fsAny[name]!;
    originals.set(name, orig);
    fsAny[name] = (...args: unknown[]) => {
      step();
      return orig.apply(fs, args);
    };
  }
  const openOrig = fsAny.openSync!;
  originals.set('openSync', openOrig);
  fsAny.openSync = (...args: unknown[]) => {
    if (opensForWriting(args[1])) step();
    return openOrig.apply(fs, args);
  };
  syncBuiltinESMExports();
  return {
    state,
    restore: () => {
      for (const [name, orig] of originals) fsAny[name] = orig as (...args: unknown[]) => unknown;
      syncBuiltinESMExports();
    },
  };
}

/** Code under test may wrap the Crash in its own error (SysfsError, ...): that still is the crash. */
function isWrappedCrash(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof Crash || (e instanceof Error && /killed after \d+ file-system change/.test(e.message))) return true;
  }
  return false;
}
