// The chart's DRA parts on a real kube-apiserver (helm install with dra.enabled): the
// DeviceClasses are stored as rendered (with their extendedResourceName and CEL); with a token
// bound to a pod on node A the agent may write gpu.vmgpu.io ResourceSlices of node A and no
// other node's or driver's (the admission policy), may read claims and classes, and may not
// change them (RBAC).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorizationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { k8sTools } from '../harness/k8s-tools.js';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { CHART } from '../harness/gpu-node.js';
import { sliceName } from '../../src/serve/dra/slices.js';

const NS = 'vmgpu-system';
const SA = 'vmgpu-agent';
const tools = k8sTools();

function slice(node: string, driver = 'gpu.vmgpu.io'): { metadata: { name: string } } & Record<string, unknown> {
  return { apiVersion: 'resource.k8s.io/v1', kind: 'ResourceSlice', metadata: { name: sliceName(node, `test-${driver}`) }, spec: { driver, nodeName: node, pool: { name: node, generation: 1, resourceSliceCount: 1 }, devices: [{ name: 'd0', attributes: { kind: { string: 'vgpu' } } }] } };
}

function denied(e: unknown): string {
  const err = e as { code?: number; body?: unknown };
  return `${err.code} ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body)}`;
}

describe('the chart with dra.enabled on a real API server', { timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let agent: CustomObjectsApi;

  before(async () => {
    cp = await startControlPlane({ apiServerArgs: ['--allow-privileged=true'] });
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const home = mkdtempSync(join(tmpdir(), 'vmgpu-dra-chart-'));
    const r = spawnSync(tools.helm, ['install', 'vmgpu', CHART, '--namespace', NS, '--create-namespace', '--set', 'dra.enabled=true', '--kubeconfig', cp.kubeconfigPath], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, HELM_CACHE_HOME: join(home, 'c'), HELM_CONFIG_HOME: join(home, 'f'), HELM_DATA_HOME: join(home, 'd') } });
    assert.equal(r.status, 0, `helm install: ${r.stderr}`);
    await cp.createNode('node-a');
    await cp.createNode('node-b');
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'agent-on-a' }, spec: { nodeName: 'node-a', serviceAccountName: SA, containers: [{ name: 'agent', image: 'ghcr.io/vmgpu/vmgpu:test' }] } } });
    const creds = await cp.serviceAccountKubeConfig(NS, SA, { boundTo: { kind: 'Pod', name: 'agent-on-a' }, create: false });
    agent = creds.kubeConfig.makeApiClient(CustomObjectsApi);
  });
  after(() => cp?.stop());

  test('the DeviceClasses are stored with their extended resource names and selectors', async () => {
    const admin = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    const c = (await admin.getClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'deviceclasses', name: 'l40s-12q.gpu.vmgpu.io' })) as { spec: { extendedResourceName: string; selectors: { cel: { expression: string } }[] } };
    assert.equal(c.spec.extendedResourceName, 'nvidia.com/L40S-12Q');
    assert.match(c.spec.selectors[0]!.cel.expression, /kind == 'vgpu' && .*profile == 'L40S-12Q'/);
    await admin.getClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'deviceclasses', name: 'vgpu.gpu.vmgpu.io' });
  });

  test('an agent writes its own node\'s gpu.vmgpu.io slices and no one else\'s', async () => {
    const create = (body: object) => agent.createClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceslices', body });
    const remove = (name: string) => agent.deleteClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceslices', name }).catch(() => undefined);
    // RBAC and the admission policy load from informers, each in its own time: the allowed write is
    // retried until RBAC lets it through, and each forbidden one until the policy refuses it (a
    // forbidden write that got in before the policy was loaded is deleted and tried again).
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await create(slice('node-a'));
        break;
      } catch (e) {
        if (Date.now() > deadline) assert.fail(`the agent could not write its own slice: ${denied(e)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    for (const [body, why] of [
      [slice('node-b'), /may write only ResourceSlices of driver gpu\.vmgpu\.io for that node/],
      [slice('node-a', 'other.example.com'), /may write only ResourceSlices of driver gpu\.vmgpu\.io/],
    ] as const) {
      for (;;) {
        const e = await create(body).then(
          () => null,
          (err: unknown) => err,
        );
        if (e) {
          assert.match(denied(e), why);
          break;
        }
        await remove(body.metadata.name);
        if (Date.now() > deadline) assert.fail(`writing ${JSON.stringify(body).slice(0, 120)} should be refused`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await agent.deleteClusterCustomObject({ group: 'resource.k8s.io', version: 'v1', plural: 'resourceslices', name: sliceName('node-a', 'test-gpu.vmgpu.io') });
  });

  test('RBAC: the agent reads claims and classes and changes neither', async () => {
    const authz = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, resource: string, namespace?: string) =>
      (await authz.createSubjectAccessReview({ body: { spec: { user: `system:serviceaccount:${NS}:${SA}`, groups: ['system:serviceaccounts'], resourceAttributes: { group: 'resource.k8s.io', resource, verb, ...(namespace ? { namespace } : {}) } } } })).status?.allowed === true;
    for (const [verb, resource] of [['get', 'resourceclaims'], ['get', 'deviceclasses'], ['watch', 'resourceslices'], ['delete', 'resourceslices']] as const) assert.ok(await can(verb, resource, resource === 'resourceclaims' ? 'tenant' : undefined), `${verb} ${resource}`);
    for (const [verb, resource] of [['update', 'resourceclaims'], ['list', 'resourceclaims'], ['delete', 'deviceclasses'], ['create', 'deviceclasses'], ['deletecollection', 'resourceslices']] as const) assert.equal(await can(verb, resource, resource === 'resourceclaims' ? 'tenant' : undefined), false, `${verb} ${resource} must be refused`);
  });
});
