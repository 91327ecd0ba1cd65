/** Leaving the process without losing output. */

/**
 * Exit with `code` once everything written to stdout and stderr has been
 * flushed. On a pipe both are asynchronous: process.exit() right after a
 * large write cut the output at 64 KiB (stdout for discover --json, stderr
 * for a long error), whichever stream's reader was slower.
 */
export function flushAndExit(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
