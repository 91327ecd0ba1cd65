// What the agent keeps on its Node, and the patch it sends: only our keys, only when they differ.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANNOTATION_PERMITTED, ANNOTATION_STATUS, ANNOTATION_VALIDATION, LABEL_STATE, LABEL_VALIDATION } from '../../../../src/serve/agent/desired.js';
import { metadataDiff, nodeMetadataFor } from '../../../../src/serve/agent/publish.js';
import type { AgentStatus } from '../../../../src/serve/agent/status.js';
import type { ValidationReport } from '../../../../src/serve/agent/validator.js';

const status: AgentStatus = { config: 'small', state: 'success', reason: 'applied (3 write(s))', gpus: [], blocked: [], undetermined: [], errors: [], appliedAt: null, observedGeneration: 'k1' };
const validation: ValidationReport = { passed: false, checkedAt: '2026-01-01T00:00:00.000Z', checks: [] };

void test('node metadata: only what is known is published', () => {
  assert.deepEqual(nodeMetadataFor({ status: null, permitted: null, validation: null }), { labels: {}, annotations: {} });
  const all = nodeMetadataFor({ status, permitted: '{"pciHostDevices":[],"mediatedDevices":[]}', validation });
  assert.deepEqual(all.labels, { [LABEL_STATE]: 'success', [LABEL_VALIDATION]: 'failed' });
  assert.deepEqual(Object.keys(all.annotations).sort(), [ANNOTATION_PERMITTED, ANNOTATION_STATUS, ANNOTATION_VALIDATION].sort());
  assert.deepEqual(JSON.parse(all.annotations[ANNOTATION_STATUS]!), status);
  assert.equal(nodeMetadataFor({ status: null, permitted: '{}', validation: null }).annotations[ANNOTATION_PERMITTED], '{}');
});

void test('diff: the keys whose value differs, never anyone else’s', () => {
  const want = nodeMetadataFor({ status, permitted: null, validation: null });
  assert.deepEqual(metadataDiff(want, undefined), want, 'a Node without metadata gets everything');
  const have = { labels: { [LABEL_STATE]: 'success', 'kubernetes.io/hostname': 'n1' }, annotations: { [ANNOTATION_STATUS]: 'stale', 'other.io/x': 'y' } };
  assert.deepEqual(metadataDiff(want, have), { labels: {}, annotations: { [ANNOTATION_STATUS]: JSON.stringify(status) } });
  const same = { labels: { ...have.labels }, annotations: { ...have.annotations, [ANNOTATION_STATUS]: JSON.stringify(status) } };
  assert.deepEqual(metadataDiff(want, same), { labels: {}, annotations: {} });
});
