// The agent's use of the Kubernetes API against the OLDEST release the project claims to
// support (test/tools/k8s/versions.json "oldest", built by scripts/build-k8s-tools.mjs): the
// agent, RBAC/admission-policy and Helm chart tests run again, in this process, against that
// kube-apiserver and its etcd. A failure below is reported under the original file's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';

process.env.VMGPU_TEST_KUBERNETES = 'oldest';
const { k8sTools } = await import('../harness/k8s-tools.js');
const { startControlPlane } = await import('../harness/controlplane.js');
const { VersionApi } = await import('@kubernetes/client-node');

test('the oldest supported kube-apiserver is the one these tests run against', { timeout: 120_000 }, async () => {
  const tools = k8sTools();
  const cp = await startControlPlane();
  try {
    const v = await cp.kubeConfig.makeApiClient(VersionApi).getCode();
    assert.equal(v.gitVersion, tools.versions.oldest.kubernetes);
  } finally {
    await cp.stop();
  }
});

await import('./agent.test.js');
await import('./agent-rbac.test.js');
await import('./helm.test.js');
