/**
 * The agent's config file (--config-file, the chart's mounted ConfigMap) is read
 * with the config bound while reading: a file linked to an endless source is an
 * error naming the file, not a read until memory runs out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileConfigSource } from '../../../../src/serve/agent/config-source.js';
import { memoryLogger } from '../../../../src/serve/kube/logger.js';
import { withScratch } from '../../../support/scratch.js';

void test('a config file that reads on forever (a link to /dev/zero) is refused with its name and the bound', async () => {
  await withScratch('vmgpu-config-file-', (dir) => {
    const file = path.join(dir, 'config.yaml');
    fs.symlinkSync('/dev/zero', file);
    const src = new FileConfigSource(file, memoryLogger()); // reads the file once
    assert.equal(src.current(), null);
    assert.match(src.problem() ?? '', new RegExp(`cannot read the config file ${file}: .*4194304`));
  });
});

void test('a regular config file is read as it is', async () => {
  await withScratch('vmgpu-config-file-', (dir) => {
    const file = path.join(dir, 'config.yaml');
    fs.writeFileSync(file, 'version: v1\n');
    const src = new FileConfigSource(file, memoryLogger());
    assert.equal(src.read(), false, 'read again unchanged: no change reported');
    assert.equal(src.current()?.text, 'version: v1\n');
    assert.equal(src.problem(), null);
  });
});
