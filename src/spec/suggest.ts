/**
 * "Did you mean" suggestions: the closest names by edit distance.
 * Used for unknown keys, unknown config names and (by the planner) unknown
 * profile names.
 */

/** Levenshtein distance (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= b.length; j++) {
      const cost = ca === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/**
 * Up to `n` candidates closest to `input`, best first. Comparison ignores
 * case; a candidate qualifies when its distance is at most
 * max(2, 30% of the longer name). Ties prefer a candidate that starts with
 * the input (`L40S-12` -> `L40S-12Q` before `L40S-1Q`), then the candidates' own order.
 * Returns [] when nothing is close (so callers can omit the hint).
 */
export function closestNames(input: string, candidates: readonly string[], n = 3): string[] {
  const needle = input.toLowerCase();
  const scored: { name: string; d: number; prefix: number; i: number }[] = [];
  const seen = new Set<string>();
  candidates.forEach((name, i) => {
    if (seen.has(name)) return;
    seen.add(name);
    const d = editDistance(needle, name.toLowerCase());
    const limit = Math.max(2, Math.floor(0.3 * Math.max(needle.length, name.length)));
    if (d <= limit) scored.push({ name, d, prefix: name.toLowerCase().startsWith(needle) ? 0 : 1, i });
  });
  scored.sort((x, y) => x.d - y.d || x.prefix - y.prefix || x.i - y.i);
  return scored.slice(0, Math.max(0, n)).map((s) => s.name);
}

/** ` Did you mean "a" or "b"?` (with a leading space), or '' when there is nothing close. */
export function didYouMean(input: string, candidates: readonly string[], n = 3): string {
  return didYouMeanOf(closestNames(input, candidates, n));
}

/** ` Did you mean "a" or "b"?` for the given names, or '' when there are none. */
export function didYouMeanOf(close: readonly string[]): string {
  if (close.length === 0) return '';
  const quoted = close.map((c) => `"${c}"`);
  const list = quoted.length === 1 ? quoted[0]! : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
  return ` Did you mean ${list}?`;
}
