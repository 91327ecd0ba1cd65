/**
 * The rooms' import rules are enforced by lint (eslint.config.js), not prose:
 * a deliberate violation of each kind is an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { ESLint } from 'eslint';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');

async function problems(file: string, code: string, rule = 'no-restricted-imports'): Promise<string[]> {
  // Type-aware rules need the file in a TypeScript project; the import rules do not, so they are linted alone.
  const eslint = new ESLint({ cwd: ROOT, overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } }, rules: { '@typescript-eslint/no-floating-promises': 'off' } } });
  const [r] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return r!.messages.filter((m) => m.ruleId === rule).map((m) => m.message);
}

const cases: [string, string, RegExp][] = [
  ['src/serve/agent/x.ts', "import { EXIT } from '../../cli/exit-codes.js';", /serve\/ must not import cli\//],
  ['src/spec/x.ts', "import type { Gpu } from '../inventory/types.js';", /spec\/ must not import inventory\//],
  ['src/plan/x.ts', "import * as fs from 'node:fs';", /plan\/ must not use node:fs/],
  ['src/plan/x.ts', "import { SysfsPort } from '../sysfs/port.js';", /plan\/ must not import sysfs\//],
  ['src/model/x.ts', "import { SysfsError } from '../sysfs/errors.js';", /model\/ must not import sysfs\//],
  ['src/serve/x.ts', "import { createSimulatedNode } from '../simulator/index.js';", /serve\/ must not import simulator\//],
  ['src/inventory/x.ts', "import { plan } from '../plan/plan.js';", /inventory\/ must not import plan\//],
  ['src/cli/x.ts', "import { loadSimulation } from '../simulator/index.js';", /cli\/ must not import simulator\//],
  ['src/plan/x.ts', "import { readTextBounded } from '../io/files.js';", /plan\/ must not import io\//],
];

for (const [file, code, message] of cases) {
  void test(`lint refuses ${code} in ${file}`, async () => {
    const found = await problems(file, `${code}\nexport const unused = 1;\n`);
    assert.ok(found.some((m) => message.test(m)), `no matching error; got ${JSON.stringify(found)}`);
  });
}

void test('an allowed import passes', async () => {
  assert.deepEqual(await problems('src/plan/x.ts', "import { parseProfile } from '../model/profile.js';\nexport const p = parseProfile;\n"), []);
});

void test('lint refuses a function over 60 lines and a file over 450 in src/, and counts only code', async () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
  const fn = (n: number) => `export function f(): number {\n  let x = 0;\n${body(n)}\n  return x;\n}\n`;
  assert.match((await problems('src/plan/x.ts', fn(57), 'max-lines-per-function'))[0] ?? '', /too many lines \(61\)/);
  assert.deepEqual(await problems('src/plan/x.ts', fn(56), 'max-lines-per-function'), []);
  assert.deepEqual(await problems('src/plan/x.ts', `/**\n${' * why\n'.repeat(40)} */\n${fn(50)}`, 'max-lines-per-function'), [], 'comments are not counted');
  const long = Array.from({ length: 451 }, (_, i) => `export const c${i} = ${i};`).join('\n');
  assert.equal((await problems('src/plan/x.ts', long, 'max-lines')).length, 1);
});
