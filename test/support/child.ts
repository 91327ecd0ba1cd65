/**
 * Run a TypeScript snippet in a child process (node --import tsx), for code
 * that might block the event loop forever (a read of /dev/zero): a hang in
 * the test process itself could not be timed out.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const REPO = path.resolve(import.meta.dirname, '..', '..');

export interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** `code` is an ES module body; `src(...)` paths in it are absolute file URLs to the repository's sources. */
export function runSnippet(code: string, timeoutMs = 20_000): ChildRun {
  const r = spawnSync(process.execPath, ['--max-old-space-size=160', '--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (r.error && !timedOut) throw r.error;
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut };
}

/** An absolute path of a source file, for `import` in a snippet. */
export const src = (rel: string): string => JSON.stringify(path.join(REPO, rel));
