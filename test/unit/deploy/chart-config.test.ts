/**
 * The config the Helm chart ships: its `default` (what an unlabelled node
 * gets) plans and applies on a node of every model vmgpu knows, and the whole
 * file validates without a node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { validateOnPaper } from '../../../src/plan/validate.js';
import { parseConfig } from '../../../src/spec/load.js';
import { simModels } from '../../../src/simulator/index.js';
import { convergesOnFresh } from '../plan/helpers.js';

const valuesPath = new URL('../../../deploy/helm/vmgpu/values.yaml', import.meta.url);
const values = parseYaml(readFileSync(valuesPath, 'utf8')) as { config: { content: string }; agent: { defaultConfig: string } };
const file = parseConfig(values.config.content, 'deploy/helm/vmgpu/values.yaml:config.content');

void test("the chart's config and every example values file's config validate without a node", () => {
  assert.deepEqual(validateOnPaper(file).errors, []);
  assert.equal(values.agent.defaultConfig, 'default');
  const dir = new URL('../../../deploy/helm/vmgpu/examples/', import.meta.url);
  let checked = 0;
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    const content = (parseYaml(readFileSync(new URL(name, dir), 'utf8')) as { config?: { content?: string } } | null)?.config?.content;
    if (!content) continue;
    assert.deepEqual(validateOnPaper(parseConfig(content, `examples/${name}`)).errors, [], name);
    checked++;
  }
  assert.ok(checked >= 6, `only ${checked} example configs`);
});

for (const m of simModels()) {
  void test(`the chart's default config plans and applies on a simulated ${m.key} node`, () => convergesOnFresh(m, file, 'default'));
}
