// The agent and the KubeVirt sync under the least-privilege RBAC of the agent contract
// (docs/agent.md), with tokens bound to a Pod on the node, against a real API server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubevirtCrd, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startFakeKubelet, type FakeKubelet } from '../harness/peers.js';
import { createSimulatedNode } from '../../src/simulator/index.js';
import { Agent } from '../../src/serve/agent/agent.js';
import { KubeClient, KubeApiError, loadKubeconfigFile } from '../../src/serve/agent/kube.js';
import { KubevirtSync, ANNOTATION_MANAGED } from '../../src/serve/agent/kubevirt-sync.js';
import { jsonLogger, memoryLogger } from '../../src/serve/deviceplugin/logger.js';
import { ANNOTATION_PERMITTED, LABEL_CONFIG, LABEL_STATE } from '../../src/serve/agent/desired.js';
import { adminClient, ConfigMount, eventually, getNode, setLabels, simContext, TWO_CONFIGS, vfProfiles } from './agent-helpers.js';

const NS = 'vmgpu-system';
const NODE = 'gpu-node-rbac';
const T = { timeout: 180_000 };
const log = () => (process.env.VMGPU_AGENT_LOG ? jsonLogger({ level: 'debug' }) : memoryLogger());

// The contract's RBAC, as the Helm chart ships it.
const AGENT_CLUSTER_ROLE = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name: 'vmgpu-agent' },
  rules: [
    { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  ],
};
const SYNC_CLUSTER_ROLE = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name: 'vmgpu-kubevirt-sync' },
  rules: [
    { apiGroups: ['kubevirt.io'], resources: ['kubevirts'], verbs: ['get', 'list', 'watch', 'patch', 'update'] },
    { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ],
};
const SYNC_ROLE = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'Role',
  metadata: { name: 'vmgpu-kubevirt-sync', namespace: NS },
  rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }],
};
const binding = (kind: 'ClusterRoleBinding' | 'RoleBinding', name: string, sa: string) => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind,
  metadata: { name, ...(kind === 'RoleBinding' ? { namespace: NS } : {}) },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: kind === 'RoleBinding' ? 'Role' : 'ClusterRole', name },
  subjects: [{ kind: 'ServiceAccount', name: sa, namespace: NS }],
});

describe('least privilege: agent and KubeVirt sync with the contract RBAC', { timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  let kubelet: FakeKubelet;
  let dir: string;
  let agent: Agent | null = null;
  let sync: KubevirtSync | null = null;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmgpu-agent-rbac-'));
    cp = await startControlPlane();
    admin = adminClient(cp.kubeconfigPath);
    await cp.createNode(NODE);
    await cp.createNode('other-node');
    await admin.request('POST', '/api/v1/namespaces', { body: { metadata: { name: NS } } });
    for (const sa of ['vmgpu-agent', 'vmgpu-kubevirt-sync']) await admin.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { body: { metadata: { name: sa } } });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', { body: AGENT_CLUSTER_ROLE });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', { body: SYNC_CLUSTER_ROLE });
    await admin.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, { body: SYNC_ROLE });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { body: binding('ClusterRoleBinding', 'vmgpu-agent', 'vmgpu-agent') });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', { body: binding('ClusterRoleBinding', 'vmgpu-kubevirt-sync', 'vmgpu-kubevirt-sync') });
    await admin.request('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, { body: binding('RoleBinding', 'vmgpu-kubevirt-sync', 'vmgpu-kubevirt-sync') });
    // The agent's pod on the node: its token is bound to it.
    await admin.request('POST', `/api/v1/namespaces/${NS}/pods`, {
      body: { metadata: { name: 'vmgpu-agent-abcde' }, spec: { nodeName: NODE, serviceAccountName: 'vmgpu-agent', containers: [{ name: 'agent', image: 'vmgpu:test' }] } },
    });
    await cp.registerCrd(kubevirtCrd());
    mkdirSync(join(dir, 'device-plugins'));
    kubelet = await startFakeKubelet(join(dir, 'device-plugins'));
  });

  after(async () => {
    await sync?.stop();
    await agent?.stop();
    admin?.close();
    await kubelet?.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the agent reconciles its node with only the contract RBAC and a pod-bound token', T, async () => {
    const creds = await cp.serviceAccountKubeConfig(NS, 'vmgpu-agent', { boundTo: { kind: 'Pod', name: 'vmgpu-agent-abcde' }, create: false });
    const kube = new KubeClient(loadKubeconfigFile(creds.kubeconfigPath), { userAgent: 'vmgpu-agent/rbac-test' });
    // Least privilege: no secrets, no configmaps, no pods.
    await assert.rejects(kube.request('GET', `/api/v1/namespaces/${NS}/secrets`), (e: unknown) => e instanceof KubeApiError && e.status === 403);
    await assert.rejects(kube.request('GET', `/api/v1/namespaces/${NS}/configmaps`), (e: unknown) => e instanceof KubeApiError && e.status === 403);
    const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] });
    const ctx = simContext(sim);
    const mount = new ConfigMount(join(dir, 'config'), TWO_CONFIGS);
    agent = new Agent({
      nodeName: NODE,
      ctx,
      kube,
      configFile: mount.file,
      stateDir: join(dir, 'state'),
      devicePluginDir: kubelet.dir,
      podResourcesSocket: join(dir, 'no-kubelet.sock'),
      metricsAddr: null,
      logger: log(),
      validateIntervalMs: 0,
      devicePluginOptions: { healthIntervalMs: 1000, watchIntervalMs: 1000 },
    });
    await agent.start();
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'small' });
    await eventually('state success under least privilege', async () => (await getNode(admin, NODE)).metadata.labels?.[LABEL_STATE] === 'success');
    assert.deepEqual(await vfProfiles(ctx), { 'L40S-1Q': 32 });
    const ev = await admin.request<{ items: { reason: string }[] }>('GET', '/api/v1/namespaces/default/events', { query: { fieldSelector: `involvedObject.name=${NODE}` } });
    assert.ok(ev.items.some((e) => e.reason === 'VgpuConfigApplied'), 'the agent could post its Event');
    const permitted = JSON.parse((await getNode(admin, NODE)).metadata.annotations?.[ANNOTATION_PERMITTED] ?? '{}') as { pciHostDevices: { resourceName: string }[] };
    assert.deepEqual(
      permitted.pciHostDevices.map((p) => p.resourceName),
      ['nvidia.com/L40S-1Q'],
    );
  });

  test('kubevirt sync: merges advertised devices, keeps foreign entries, idempotent, removes only its own; Lease-elected', T, async () => {
    const foreign = { pciVendorSelector: '8086:0B25', resourceName: 'intel.com/qat', externalResourceProvider: true };
    await admin.request('POST', '/apis/kubevirt.io/v1/namespaces/' + NS + '/kubevirts', {
      body: { apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', metadata: { name: 'kubevirt', namespace: NS }, spec: { configuration: { permittedHostDevices: { pciHostDevices: [foreign] }, developerConfiguration: { featureGates: ['GPU'] } } } },
    });
    const creds = await cp.serviceAccountKubeConfig(NS, 'vmgpu-kubevirt-sync', { create: false });
    const client = new KubeClient(loadKubeconfigFile(creds.kubeconfigPath), { userAgent: 'vmgpu-agent/kubevirt-sync-test' });
    sync = new KubevirtSync({ client, namespace: NS, name: 'kubevirt', leaseNamespace: NS, logger: log(), leaseDurationSeconds: 6, debounceMs: 50 });
    sync.start();
    type KV = { metadata: { annotations?: Record<string, string>; resourceVersion: string }; spec: { configuration: { permittedHostDevices: { pciHostDevices: { resourceName: string; pciVendorSelector: string; externalResourceProvider: boolean }[] }; developerConfiguration: unknown } } };
    const kv = () => admin.request<KV>('GET', `/apis/kubevirt.io/v1/namespaces/${NS}/kubevirts/kubevirt`);
    const got = await eventually('our entry merged', async () => {
      const k = await kv();
      return k.spec.configuration.permittedHostDevices.pciHostDevices.some((e) => e.resourceName === 'nvidia.com/L40S-1Q') ? k : null;
    });
    assert.deepEqual(got.spec.configuration.permittedHostDevices.pciHostDevices[0], foreign, 'the foreign entry is untouched and first');
    assert.ok(got.spec.configuration.permittedHostDevices.pciHostDevices.every((e) => e.externalResourceProvider === true));
    assert.deepEqual(got.spec.configuration.developerConfiguration, { featureGates: ['GPU'] }, 'other configuration is kept');
    assert.match(got.metadata.annotations?.[ANNOTATION_MANAGED] ?? '', /L40S-1Q/);
    const lease = await admin.request<{ spec: { holderIdentity: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/vmgpu-kubevirt-sync`);
    assert.ok(lease.spec.holderIdentity);
    // Idempotent: another sync changes nothing.
    const rv = got.metadata.resourceVersion;
    const again = await sync.syncOnce();
    assert.equal(again.changed, false);
    assert.equal((await kv()).metadata.resourceVersion, rv);
    // The node stops advertising the profile: our entry goes, the foreign one stays.
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'large' });
    const after2 = await eventually('entries follow the node', async () => {
      const k = await kv();
      const names = k.spec.configuration.permittedHostDevices.pciHostDevices.map((e) => e.resourceName).sort();
      return JSON.stringify(names) === JSON.stringify(['intel.com/qat', 'nvidia.com/L40S-2Q']) ? k : null;
    });
    assert.deepEqual(after2.spec.configuration.permittedHostDevices.pciHostDevices[0], foreign);
  });
});
