// Retry timing shared by the agent, the informers and the KubeVirt sync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffDelay, parseDuration } from '../../../../src/serve/kube/backoff.js';

void test('backoff: grows exponentially, capped, jittered within [d/2, d]', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
      const d = backoffDelay(attempt, 100, 10_000, () => r);
      const cap = Math.min(10_000, 100 * 2 ** (attempt - 1));
      return d >= Math.floor(cap / 2) && d <= cap;
    }),
  );
  assert.ok(backoffDelay(1, 100, 10_000, () => 1) < backoffDelay(4, 100, 10_000, () => 1));
  assert.equal(parseDuration('5m', 'x'), 300_000);
  assert.equal(parseDuration('250ms', 'x'), 250);
  assert.throws(() => parseDuration('soon', '--validate-interval'), /--validate-interval/);
});
