/** The command table in main.ts names every command its modules define, each once, in help order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMANDS } from '../../../src/cli/main.js';

void test('every command a module defines is in the table, and every table entry is in its module', async () => {
  const defined = new Map<string, string>();
  for (const [name, load] of Object.entries(COMMANDS)) {
    const mod = await load();
    assert.ok(mod[name], `${name} is listed but its module does not define it`);
    for (const other of Object.keys(mod)) defined.set(other, name);
  }
  assert.deepEqual([...defined.keys()].sort(), Object.keys(COMMANDS).sort(), 'commands defined but not listed in main.ts');
});
