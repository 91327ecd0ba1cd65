/**
 * The config fuzzer (issue 12): thousands of seeded, malformed config files
 * (mutations of the fixtures, random YAML shaped like a config, and hostile
 * shapes: deep nesting, huge keys, floods of problems, alias fans), each
 * through the parser and, when it parses, the planner and the applier on a
 * simulated node. Every input must end in a parsed config or one clean
 * ConfigError (positioned, at most 101 lines of at most ~1,100 characters, no
 * stack-overflow text); nothing may throw anything else; and an input that is
 * rejected, at parse or at plan, must change nothing on the node.
 *
 * Defaults run in well under a minute in `npm test`. The long run:
 *   VMGPU_FUZZ_RUNS=200000 VMGPU_FUZZ_SEED=7 node --import tsx --test test/unit/spec/config-fuzz.test.ts
 * prints the same figures (docs/testing.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ApplyError, applyPlan } from '../../../src/apply/apply.js';
import { readInventory } from '../../../src/inventory/read.js';
import { plan as makePlan } from '../../../src/plan/plan.js';
import { ConfigError, MAX_LISTED_PROBLEMS, type ConfigFile } from '../../../src/spec/config.js';
import { parseConfig, selectConfig } from '../../../src/spec/load.js';
import { ENTRY_KEYS } from '../../../src/spec/entry.js';
import { createSimulatedNode, SimHostTools, type SimNodeSpec } from '../../../src/simulator/index.js';

const RUNS = Number(process.env.VMGPU_FUZZ_RUNS ?? 3000);
const SEED = Number(process.env.VMGPU_FUZZ_SEED ?? 20260512);
const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/configs');

const SEEDS = [...fs.readdirSync(FIXTURES), ...fs.readdirSync(path.join(FIXTURES, 'engine')).map((f) => `engine/${f}`)]
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => fs.readFileSync(path.join(FIXTURES, f), 'utf8'));

/** A node the fixtures' profiles mostly exist on: SR-IOV, mdev and a passthrough card. */
const NODE: SimNodeSpec = {
  gpus: [
    { model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] },
    { model: 'A100', count: 1, mode: 'mdev-vgpu' },
    { model: 'T4', count: 1, mode: 'mdev-vgpu' },
    { model: 'L4', count: 1, mode: 'passthrough' },
  ],
};
const INVENTORY = readInventory(createSimulatedNode(NODE).port);

// ------------------------------------------------------------------ inputs

const SYNTAX = [':', ': ', '-', '- ', '[', ']', '{', '}', ',', '&a ', '*a', '!!str ', '!x ', '|', '>', "'", '"', '#', '%', '@', '`', '?', '\t', '\n', '  ', '---\n', '...\n', '\r\n', '\u00e9', '\u{1f600}', '\u0000', '\ufeff', '0x26B910DE', '1e3', '-1', '65536', 'null', '~', 'L40S-12Q', 'NVIDIA ', 'vgpu-devices', 'devices', 'all', 'mode', 'passthrough'];

const hostileValue: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 0, max: 20_000 }).map((n) => 'k'.repeat(n)),
  fc.integer({ min: 1, max: 3000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.constantFrom('9007199254740993', '-0', '0.5', '0x10', '1_000', '.inf', '.nan', '""', "''", '[]', '{}', '*nowhere', '!!binary aGk=', '&a [*a, *a]'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

type Mutation = { kind: 'delete'; at: number; len: number } | { kind: 'insert'; at: number; text: string } | { kind: 'dup' | 'swap' | 'indent'; at: number; n: number } | { kind: 'value'; at: number; value: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.array(fc.constantFrom(...SYNTAX), { maxLength: 6 }).map((a) => a.join('')) }),
  fc.record({ kind: fc.constantFrom('dup' as const, 'swap' as const, 'indent' as const), at: fc.nat(), n: fc.integer({ min: -4, max: 4 }) }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), value: hostileValue }),
);

function mutate(text: string, m: Mutation): string {
  const at = text.length ? m.at % text.length : 0;
  if (m.kind === 'delete') return text.slice(0, at) + text.slice(at + m.len);
  if (m.kind === 'insert') return text.slice(0, at) + m.text + text.slice(at);
  if (m.kind === 'value') {
    // Replace the word at `at` (a key, a name, a number) with the value.
    const words = [...text.matchAll(/[A-Za-z0-9_.-]+/g)];
    const w = words[m.at % Math.max(1, words.length)];
    return w ? text.slice(0, w.index) + m.value + text.slice(w.index! + w[0].length) : text + m.value;
  }
  const lines = text.split('\n');
  const i = m.at % lines.length;
  if (m.kind === 'dup') lines.splice(i, 0, lines[i]!);
  else if (m.kind === 'swap') [lines[i], lines[(i + 1) % lines.length]] = [lines[(i + 1) % lines.length]!, lines[i]!];
  else lines[i] = m.n >= 0 ? ' '.repeat(m.n) + lines[i] : lines[i]!.slice(-m.n);
  return lines.join('\n');
}

const mutated = fc.tuple(fc.constantFrom(...SEEDS), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([seed, ms]) => ms.reduce(mutate, seed));

/** Random YAML with a config's shape: known and unknown keys, any JSON values. */
const shaped = fc
  .record({
    version: fc.oneof(fc.constant('v1'), fc.jsonValue()),
    configs: fc.dictionary(
      fc.oneof(fc.constantFrom('a', 'default', 'l40s'), fc.string({ maxLength: 12 })),
      fc.array(fc.dictionary(fc.oneof(fc.constantFrom(...ENTRY_KEYS), fc.string({ maxLength: 8 })), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('all', 'L40S-12Q', 'passthrough'))), { maxLength: 3 }),
      { maxKeys: 3 },
    ),
  })
  .map((c) => stringify({ version: c.version, 'vgpu-configs': c.configs }));

/** Shapes made to hurt: nesting, floods of problems, huge keys, alias fans. */
const hostile = fc.oneof(
  fc.integer({ min: 10, max: 5000 }).map((n) => `version: v1\nvgpu-configs:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n')}\n`),
  fc.integer({ min: 100, max: 20_000 }).map((n) => `version: v1\nvgpu-configs:\n  a:\n    - devices: all\n      vgpu-devices: {}\n${Array.from({ length: n }, (_, i) => `      bad${i}: 1`).join('\n')}\n`),
  fc.integer({ min: 100, max: 200_000 }).map((n) => `version: v1\nvgpu-configs:\n  a:\n    - devices: all\n      vgpu-devices: {"${'q'.repeat(n)}": 1}\n`),
  fc.integer({ min: 2, max: 12 }).map((n) => `version: v1\nx0: &a0 [1]\n${Array.from({ length: n }, (_, i) => `x${i + 1}: &a${i + 1} [*a${i}, *a${i}, *a${i}]`).join('\n')}\nvgpu-configs: {}\n`),
);

// ------------------------------------------------------------------ checks

interface Figures {
  cases: number;
  accepted: number;
  cleanErrors: number;
  crashes: string[];
  planned: number;
  rejectedAtPlan: number;
  treesChangedByRejected: number;
}

function checkCleanError(e: ConfigError, text: string): void {
  const lines = e.message.split('\n');
  assert.ok(lines.length >= 1 && lines.length <= MAX_LISTED_PROBLEMS + 1, `${lines.length} lines`);
  for (const l of lines) {
    assert.ok(l.startsWith('fuzz.yaml'), `a line does not name the file: ${JSON.stringify(l.slice(0, 200))}`);
    assert.ok(l.length <= 1100, `a line of ${l.length} characters`);
    assert.doesNotMatch(l, /call stack|\[object Object\]|undefined/, l.slice(0, 200));
  }
  const lastLine = text.split('\n').length + 1;
  for (const p of e.problems) assert.ok(p.line >= 0 && p.line <= lastLine && p.column >= 0, `position ${p.line}:${p.column}`);
}

/** Plan every config of an accepted file; a plan with errors is applied anyway and must write nothing. */
async function checkPlans(file: ConfigFile, f: Figures): Promise<void> {
  for (const c of file.configs.slice(0, 3)) {
    const entries = selectConfig(file, c.name);
    const plan = makePlan(INVENTORY, file, { name: c.name, entries, line: 0 }, { nodeId: 'fuzz', inUse: new Map(), vfioDriverFor: () => 'vfio-pci' });
    f.planned++;
    if (plan.errors.length === 0) continue;
    f.rejectedAtPlan++;
    const node = createSimulatedNode(NODE);
    await assert.rejects(applyPlan(plan, { port: node.port, tools: new SimHostTools(node) }), ApplyError);
    if (node.writes() > 0) f.treesChangedByRejected++;
  }
}

async function check(text: string, f: Figures): Promise<void> {
  f.cases++;
  let file: ConfigFile;
  try {
    file = parseConfig(text, 'fuzz.yaml');
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      f.crashes.push(`${String(err).slice(0, 200)} for ${JSON.stringify(text.slice(0, 200))}`);
      throw err;
    }
    checkCleanError(err, text);
    f.cleanErrors++;
    return;
  }
  f.accepted++;
  await checkPlans(file, f);
}

void test(`config fuzzer: ${RUNS} seeded cases end in a config or one clean error, and rejected ones change nothing`, { timeout: 30 * 60_000 }, async (t) => {
  const f: Figures = { cases: 0, accepted: 0, cleanErrors: 0, crashes: [], planned: 0, rejectedAtPlan: 0, treesChangedByRejected: 0 };
  const input = fc.oneof({ arbitrary: mutated, weight: 6 }, { arbitrary: shaped, weight: 3 }, { arbitrary: hostile, weight: 1 });
  await fc.assert(
    fc.asyncProperty(input, (text) => check(text, f)),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  t.diagnostic(
    `seed ${SEED}: ${f.cases} cases, ${f.accepted} parsed, ${f.cleanErrors} clean errors, ${f.crashes.length} crashes; ` +
      `${f.planned} plans, ${f.rejectedAtPlan} rejected at plan, ${f.treesChangedByRejected} trees changed by a rejected input`,
  );
  assert.equal(f.crashes.length, 0);
  assert.equal(f.treesChangedByRejected, 0);
  assert.ok(f.cleanErrors > RUNS / 3 && f.accepted > RUNS / 100, 'the inputs exercise both outcomes');
});
