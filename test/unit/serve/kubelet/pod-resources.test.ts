// The kubelet's pod-resources answer turned into the planner's in-use set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inUseFromAssignments, podsHolding, PodResourcesClient, PodResourcesError } from '../../../../src/serve/kubelet/pod-resources.js';

void test('pod-resources: only our resources or our device IDs count as in use', () => {
  const m = inUseFromAssignments(
    [
      { resourceName: 'nvidia.com/L40S-1Q', deviceId: '0000:3B:00.4', pod: 'ns/vm1' },
      { resourceName: 'example.com/nic', deviceId: '0000:5e:00.1', pod: 'ns/net' },
      { resourceName: 'other.io/x', deviceId: '0000:18:00.0', pod: 'ns/vm2' },
    ],
    new Set(['nvidia.com/L40S-1Q']),
    new Set(['0000:18:00.0']),
  );
  assert.deepEqual([...m.keys()].sort(), ['0000:18:00.0', '0000:3b:00.4']);
  assert.match(m.get('0000:3b:00.4')!, /pod ns\/vm1/);
});

void test('a missing pod-resources socket is not "nothing in use" (defect 2): it fails, saying where it looked and how to fix it', async () => {
  const client = new PodResourcesClient('/nonexistent/kubelet/pod-resources/kubelet.sock');
  await assert.rejects(podsHolding(client, null, new Set()), (err: unknown) => {
    assert.ok(err instanceof PodResourcesError);
    assert.match(err.message, /\/nonexistent\/kubelet\/pod-resources\/kubelet\.sock does not exist/);
    assert.match(err.message, /cannot tell which devices pods hold/);
    assert.match(err.message, /k0s/);
    assert.match(err.message, /--root-dir/);
    assert.match(err.message, /--no-kubelet/);
    return true;
  });
});
