// The agent and the KubeVirt sync under the least-privilege RBAC of the agent contract
// (docs/agent.md), with tokens bound to a Pod on the node, against a real API server.
import { openSimulated } from '../../src/machine/simulated.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubevirtCrd, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { startFakeKubelet, startPodResources, type FakeKubelet, type FakePodResources } from '../harness/peers.js';
import { createSimulatedNode } from '../../src/simulator/index.js';
import { Agent } from '../../src/serve/agent/agent.js';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { apiStatus, Kube, loadKubeConfig } from '../../src/serve/kube/kube.js';
import { KubevirtSync, ANNOTATION_MANAGED } from '../../src/serve/kubevirt/sync.js';
import { jsonLogger, memoryLogger } from '../../src/serve/kube/logger.js';
import { ANNOTATION_PERMITTED, ANNOTATION_STATUS, LABEL_CONFIG, LABEL_STATE } from '../../src/serve/agent/desired.js';
import { adminClient, type Admin, ConfigMount, getNode, nodeEvents, setLabels, TWO_CONFIGS, vfProfiles } from './agent-helpers.js';
import { eventually } from '../support/wait.js';

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
  let admin: Admin;
  let kubelet: FakeKubelet;
  // The kubelet's pod-resources answer, as on a real node: without it the agent changes nothing.
  let pods: FakePodResources;
  let dir: string;
  let agent: Agent | null = null;
  let sync: KubevirtSync | null = null;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmgpu-agent-rbac-'));
    cp = await startControlPlane();
    admin = adminClient(cp.kubeConfig);
    await cp.createNode(NODE);
    await cp.createNode('other-node');
    await admin.core.createNamespace({ body: { metadata: { name: NS } } });
    for (const sa of ['vmgpu-agent', 'vmgpu-kubevirt-sync']) await admin.core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: sa } } });
    await admin.rbac.createClusterRole({ body: AGENT_CLUSTER_ROLE });
    await admin.rbac.createClusterRole({ body: SYNC_CLUSTER_ROLE });
    await admin.rbac.createNamespacedRole({ namespace: NS, body: SYNC_ROLE });
    await admin.rbac.createClusterRoleBinding({ body: binding('ClusterRoleBinding', 'vmgpu-agent', 'vmgpu-agent') });
    await admin.rbac.createClusterRoleBinding({ body: binding('ClusterRoleBinding', 'vmgpu-kubevirt-sync', 'vmgpu-kubevirt-sync') });
    await admin.rbac.createNamespacedRoleBinding({ namespace: NS, body: binding('RoleBinding', 'vmgpu-kubevirt-sync', 'vmgpu-kubevirt-sync') });
    // The agent's pod on the node: its token is bound to it.
    await admin.core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'vmgpu-agent-abcde' }, spec: { nodeName: NODE, serviceAccountName: 'vmgpu-agent', containers: [{ name: 'agent', image: 'vmgpu:test' }] } },
    });
    await cp.registerCrd(kubevirtCrd());
    mkdirSync(join(dir, 'device-plugins'));
    kubelet = await startFakeKubelet(join(dir, 'device-plugins'));
    pods = await startPodResources(join(dir, 'pod-resources.sock'), []);
  });

  after(async () => {
    await sync?.stop();
    await agent?.stop();
    await kubelet?.stop();
    await pods?.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the agent reconciles its node with only the contract RBAC and a pod-bound token', T, async () => {
    const creds = await cp.serviceAccountKubeConfig(NS, 'vmgpu-agent', { boundTo: { kind: 'Pod', name: 'vmgpu-agent-abcde' }, create: false });
    const kube = new Kube(loadKubeConfig(creds.kubeconfigPath), { userAgent: 'vmgpu-agent/rbac-test' });
    // Least privilege: no secrets, no configmaps, no pods.
    await assert.rejects(kube.core.listNamespacedSecret({ namespace: NS }), (e: unknown) => apiStatus(e) === 403);
    await assert.rejects(kube.core.listNamespacedConfigMap({ namespace: NS }), (e: unknown) => apiStatus(e) === 403);
    await assert.rejects(kube.core.listNamespacedPod({ namespace: NS }), (e: unknown) => apiStatus(e) === 403);
    const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] });
    const machine = openSimulated(sim);
    const mount = new ConfigMount(join(dir, 'config'), TWO_CONFIGS);
    agent = new Agent({
      nodeName: NODE,
      machine,
      kube,
      configFile: mount.file,
      stateDir: join(dir, 'state'),
      devicePluginDir: kubelet.dir,
      podResourcesSocket: pods.socketPath,
      metricsAddr: null,
      logger: log(),
      validateIntervalMs: 0,
      devicePluginOptions: { healthIntervalMs: 1000, watchIntervalMs: 1000 },
    });
    await agent.start();
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'small' });
    await eventually('state success under least privilege', async () => (await getNode(admin, NODE)).metadata?.labels?.[LABEL_STATE] === 'success');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-1Q': 32 });
    assert.ok((await nodeEvents(admin, NODE)).some((e) => e.reason === 'VgpuConfigApplied'), 'the agent could post its Event');
    const permitted = JSON.parse((await getNode(admin, NODE)).metadata?.annotations?.[ANNOTATION_PERMITTED] ?? '{}') as { pciHostDevices: { resourceName: string }[] };
    assert.deepEqual(
      permitted.pciHostDevices.map((p) => p.resourceName),
      ['nvidia.com/L40S-1Q'],
    );
  });

  test('kubevirt sync: merges advertised devices, keeps foreign entries, idempotent, removes only its own; Lease-elected', T, async () => {
    const foreign = { pciVendorSelector: '8086:0B25', resourceName: 'intel.com/qat', externalResourceProvider: true };
    await admin.custom.createNamespacedCustomObject({
      group: 'kubevirt.io',
      version: 'v1',
      namespace: NS,
      plural: 'kubevirts',
      body: { apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', metadata: { name: 'kubevirt', namespace: NS }, spec: { configuration: { permittedHostDevices: { pciHostDevices: [foreign] }, developerConfiguration: { featureGates: ['GPU'] } } } },
    });
    const creds = await cp.serviceAccountKubeConfig(NS, 'vmgpu-kubevirt-sync', { create: false });
    const kube = new Kube(loadKubeConfig(creds.kubeconfigPath), { userAgent: 'vmgpu-agent/kubevirt-sync-test' });
    sync = new KubevirtSync({ kube, namespace: NS, name: 'kubevirt', leaseNamespace: NS, logger: log(), leaseDurationSeconds: 6, debounceMs: 50 });
    sync.start();
    type KV = { metadata: { annotations?: Record<string, string>; resourceVersion: string }; spec: { configuration: { permittedHostDevices: { pciHostDevices: { resourceName: string; pciVendorSelector: string; externalResourceProvider: boolean }[] }; developerConfiguration: unknown } } };
    const kv = async () => (await admin.custom.getNamespacedCustomObject({ group: 'kubevirt.io', version: 'v1', namespace: NS, plural: 'kubevirts', name: 'kubevirt' })) as KV;
    const got = await eventually('our entry merged', async () => {
      const k = await kv();
      return k.spec.configuration.permittedHostDevices.pciHostDevices.some((e) => e.resourceName === 'nvidia.com/L40S-1Q') ? k : null;
    });
    assert.deepEqual(got.spec.configuration.permittedHostDevices.pciHostDevices[0], foreign, 'the foreign entry is untouched and first');
    assert.ok(got.spec.configuration.permittedHostDevices.pciHostDevices.every((e) => e.externalResourceProvider === true));
    assert.deepEqual(got.spec.configuration.developerConfiguration, { featureGates: ['GPU'] }, 'other configuration is kept');
    assert.match(got.metadata.annotations?.[ANNOTATION_MANAGED] ?? '', /L40S-1Q/);
    const lease = await admin.coordination.readNamespacedLease({ namespace: NS, name: 'vmgpu-kubevirt-sync' });
    assert.ok(lease.spec?.holderIdentity);
    assert.match(String(lease.spec?.renewTime), /\.\d{6}Z$/, 'renewTime is a MicroTime (six fractional digits)');
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
  test('--config-map: the config read through the API, with a Role for that one ConfigMap; an edit re-applies, a deletion writes nothing', T, async () => {
    await agent?.stop();
    agent = null;
    const CM = 'vmgpu-config';
    await admin.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: CM }, data: { 'config.yaml': TWO_CONFIGS } } });
    await admin.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'unrelated' }, data: { secret: 'not for the agent' } } });
    // The chart's Role for --config-map (templates/rbac-agent.yaml): only this ConfigMap, by name.
    await admin.rbac.createNamespacedRole({ namespace: NS, body: { metadata: { name: 'vmgpu-agent', namespace: NS }, rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [CM], verbs: ['get', 'list', 'watch'] }] } });
    await admin.rbac.createNamespacedRoleBinding({ namespace: NS, body: binding('RoleBinding', 'vmgpu-agent', 'vmgpu-agent') });
    const creds = await cp.serviceAccountKubeConfig(NS, 'vmgpu-agent', { boundTo: { kind: 'Pod', name: 'vmgpu-agent-abcde' }, create: false });
    const kube = new Kube(loadKubeConfig(creds.kubeconfigPath), { userAgent: 'vmgpu-agent/config-map-test' });
    await eventually('the Role is in effect', async () => (await kube.core.readNamespacedConfigMap({ namespace: NS, name: CM })).data?.['config.yaml'] === TWO_CONFIGS);
    await assert.rejects(kube.core.readNamespacedConfigMap({ namespace: NS, name: 'unrelated' }), (e: unknown) => apiStatus(e) === 403, 'other ConfigMaps stay unreadable');
    await assert.rejects(kube.core.listNamespacedConfigMap({ namespace: NS }), (e: unknown) => apiStatus(e) === 403, 'a list without the name selector is refused');

    const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] });
    const machine = openSimulated(sim);
    await setLabels(admin, NODE, { [LABEL_CONFIG]: 'large' });
    agent = new Agent({
      nodeName: NODE,
      machine,
      kube,
      configMap: { namespace: NS, name: CM },
      stateDir: join(dir, 'state-config-map'),
      devicePluginDir: kubelet.dir,
      podResourcesSocket: pods.socketPath,
      metricsAddr: null,
      logger: log(),
      validateIntervalMs: 0,
      retryInitialMs: 200,
      retryMaxMs: 1000,
      devicePluginOptions: { healthIntervalMs: 1000, watchIntervalMs: 1000 },
    });
    await agent.start();
    await eventually('config large from the ConfigMap applied', async () => JSON.stringify(await vfProfiles(machine)) === JSON.stringify({ 'L40S-2Q': 24 }));
    assert.equal(agent.currentConfig()?.fileName, `ConfigMap ${NS}/${CM} key config.yaml`);

    // An edit through the API reaches the agent through its watch (no kubelet volume sync involved).
    const edited = TWO_CONFIGS.replace('L40S-2Q: 24', 'L40S-4Q: 12');
    await admin.core.patchNamespacedConfigMap({ namespace: NS, name: CM, body: { data: { 'config.yaml': edited } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await eventually('the edited config applied', async () => JSON.stringify(await vfProfiles(machine)) === JSON.stringify({ 'L40S-4Q': 12 }));
    await eventually('state success after the edit', async () => (await getNode(admin, NODE)).metadata?.labels?.[LABEL_STATE] === 'success');

    // The ConfigMap is deleted: the agent says so, and leaves the node as it is.
    const writes = sim.writes();
    await admin.core.deleteNamespacedConfigMap({ namespace: NS, name: CM });
    await eventually('the missing ConfigMap is reported', async () => agent!.configProblem()?.includes('does not exist'));
    await eventually('state failed with the reason', async () => {
      const md = (await getNode(admin, NODE)).metadata;
      return md?.labels?.[LABEL_STATE] === 'failed' && /ConfigMap vmgpu-system\/vmgpu-config does not exist/.test(md.annotations?.[ANNOTATION_STATUS] ?? '');
    });
    assert.equal(sim.writes(), writes, 'a missing config must not write anything');
    assert.deepEqual(await vfProfiles(machine), { 'L40S-4Q': 12 });
  });
});
