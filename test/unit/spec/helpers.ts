import assert from 'node:assert/strict';
import { ConfigError, type ConfigProblem } from '../../../src/spec/config.js';
import { parseConfig } from '../../../src/spec/load.js';

/** Join lines with "\n" (and a final newline) so line numbers in tests are easy to read. */
export function lines(...ls: string[]): string {
  return `${ls.join('\n')}\n`;
}

/** Parse text that must fail; return its problems. */
export function problemsOf(text: string, filename = 'config.yaml'): ConfigProblem[] {
  try {
    parseConfig(text, filename);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

/** Parse text that must fail with exactly one problem; return it. */
export function oneProblem(text: string): ConfigProblem {
  const ps = problemsOf(text);
  assert.equal(ps.length, 1, `expected one problem, got:\n${ps.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`).join('\n')}`);
  return ps[0]!;
}

/** A minimal valid file around one entry (entry lines are indented under "- " at line 4). */
export function withEntry(...entryLines: string[]): string {
  return lines('version: v1', 'vgpu-configs:', '  c:', ...entryLines.map((l, i) => (i === 0 ? `    - ${l}` : `      ${l}`)));
}
