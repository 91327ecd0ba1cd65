/**
 * Run `vmgpu` from source (node --import tsx src/cli/main.ts) in a child
 * process, for tests of what the command does at its edges: exit code, what
 * it prints, how long it may take and how much memory it may grow to. A
 * command that hangs is killed at `timeoutMs` and reported as such.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const REPO = path.resolve(import.meta.dirname, '..', '..', '..');
const MAIN = path.join(REPO, 'src', 'cli', 'main.ts');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface CliRunOptions {
  /** Text on standard input. */
  input?: string;
  /** A shell command whose output is piped into vmgpu's standard input (e.g. `yes`). */
  stdinFrom?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Caps the V8 heap (MiB), so a command that reads without bound fails fast instead of eating the machine. */
  maxOldSpaceMiB?: number;
}

export function runCli(args: string[], opts: CliRunOptions = {}): CliRun {
  const node = [...(opts.maxOldSpaceMiB ? [`--max-old-space-size=${opts.maxOldSpaceMiB}`] : []), '--import', 'tsx', MAIN];
  const env = { ...process.env, VMGPU_DEBUG: '', VMGPU_STATE_DIR: '', ...opts.env };
  const timeout = opts.timeoutMs ?? 30_000;
  const r = opts.stdinFrom
    ? spawnSync('/bin/sh', ['-c', `${opts.stdinFrom} | exec "$@"`, 'sh', process.execPath, ...node, ...args], { cwd: REPO, env, timeout, encoding: 'utf8', killSignal: 'SIGKILL', maxBuffer: 64 << 20 })
    : spawnSync(process.execPath, [...node, ...args], { cwd: REPO, env, timeout, encoding: 'utf8', input: opts.input ?? '', killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (r.error && !timedOut) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut };
}

/** A one-line summary for assertion messages. */
export function describeRun(r: CliRun): string {
  return `${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}; stderr: ${JSON.stringify(r.stderr.slice(0, 600))}; stdout: ${JSON.stringify(r.stdout.slice(0, 300))}`;
}
