/** Exponential backoff with full jitter in the upper half, and small timer helpers. */

/**
 * Delay before retry number `attempt` (1-based): initial * 2^(attempt-1),
 * capped at max, then a uniformly random value in [d/2, d] so many nodes
 * failing together do not retry in step.
 */
import { InputError } from '../../model/errors.js';
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, initialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** Sleep, resolving early (without error) when the signal aborts. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Parse `5m`, `30s`, `250ms`, `1h` or a plain number of seconds into milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(text).trim());
  if (!m) throw new InputError(`${what} ${JSON.stringify(text)}: give a duration such as 30s, 5m or 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}
