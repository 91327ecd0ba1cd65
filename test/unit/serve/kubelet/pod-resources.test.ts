// The kubelet's pod-resources answer turned into the planner's in-use set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inUseFromAssignments } from '../../../../src/serve/kubelet/pod-resources.js';

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
