// Proves the control-plane harness runs a real Kubernetes API server (etcd-backed,
// optimistic concurrency, watches, RBAC, the Node authorizer, ValidatingAdmissionPolicy,
// TokenRequest) and that its failure paths say what is wrong and what to run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
// The harness first: it checks that @kubernetes/client-node can load on this Node.
import { kubevirtCrd, liveControlPlaneDirs, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import { k8sTools } from '../harness/k8s-tools.js';
import {
  AdmissionregistrationV1Api,
  ApisApi,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  VersionApi,
  Watch,
  setHeaderOptions,
  type V1Node,
} from '@kubernetes/client-node';

const repo = resolve(import.meta.dirname, '..', '..');
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function httpCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

async function expectCode(p: Promise<unknown>, code: number, what: string): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    assert.equal(httpCode(e), code, `${what}: expected HTTP ${code}, got ${String(httpCode(e))}: ${String(e)}`);
    return e;
  }
  assert.fail(`${what}: expected HTTP ${code}, but the request succeeded`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(100);
  }
}

void describe('real control plane (etcd + kube-apiserver)', { timeout: 180_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;

  before(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
  });
  after(async () => {
    await cp?.stop();
  });

  void test('serves the pinned Kubernetes version and resource.k8s.io/v1', async () => {
    const v = await cp.kubeConfig.makeApiClient(VersionApi).getCode();
    assert.equal(v.gitVersion, cp.versions.kubernetes);
    const groups = await cp.kubeConfig.makeApiClient(ApisApi).getAPIVersions();
    const resource = groups.groups.find((g) => g.name === 'resource.k8s.io');
    assert.ok(resource?.versions.some((gv) => gv.version === 'v1'), `resource.k8s.io/v1 not served: ${JSON.stringify(resource)}`);
    assert.ok(cp.startupMs > 0 && cp.startupMs < 60_000, `startupMs ${cp.startupMs}`);
  });

  void test('a Node: stale resourceVersion gets 409 Conflict, and a watch sees the change', async () => {
    const created = await cp.createNode('cp-node-a', { 'vmgpu.io/role': 'gpu' });
    const staleRv = created.metadata?.resourceVersion;
    assert.ok(staleRv);

    const events: Array<{ phase: string; node: V1Node }> = [];
    const watch = new Watch(cp.kubeConfig);
    const ctl = await watch.watch(
      '/api/v1/nodes',
      { fieldSelector: 'metadata.name=cp-node-a', resourceVersion: staleRv },
      (phase, obj: V1Node) => events.push({ phase, node: obj }),
      () => undefined,
    );
    try {
      const fresh = await core.patchNode({ name: 'cp-node-a', body: { metadata: { labels: { 'vmgpu.io/profile': 'a' } } } }, mergePatch);
      assert.notEqual(fresh.metadata?.resourceVersion, staleRv);

      // Optimistic concurrency: a patch that names the old resourceVersion is refused.
      await expectCode(
        core.patchNode({ name: 'cp-node-a', body: { metadata: { resourceVersion: staleRv, labels: { 'vmgpu.io/profile': 'b' } } } }, mergePatch),
        409,
        'patch with stale resourceVersion',
      );
      const now = await core.readNode({ name: 'cp-node-a' });
      assert.equal(now.metadata?.labels?.['vmgpu.io/profile'], 'a');

      await waitUntil('watch MODIFIED event with the new label', 10_000, () =>
        events.some((e) => e.phase === 'MODIFIED' && e.node.metadata?.labels?.['vmgpu.io/profile'] === 'a'),
      );
      assert.ok(!events.some((e) => e.node.metadata?.labels?.['vmgpu.io/profile'] === 'b'), 'the refused patch must not be seen');
    } finally {
      ctl.abort();
    }
  });

  void test('a ServiceAccount gets 403 without RBAC and 200 after a RoleBinding / ClusterRoleBinding', async () => {
    const sa = await cp.serviceAccountKubeConfig('vmgpu-system', 'agent');
    const saCore = sa.kubeConfig.makeApiClient(CoreV1Api);
    assert.ok(sa.expiresAt.getTime() > Date.now());

    await expectCode(saCore.listNamespacedConfigMap({ namespace: 'vmgpu-system' }), 403, 'list configmaps before RoleBinding');
    await expectCode(saCore.listNode(), 403, 'list nodes before ClusterRoleBinding');

    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    // (No kube-controller-manager runs, so aggregated ClusterRoles such as `view` stay empty:
    // grant with explicit rules.)
    await rbac.createNamespacedRole({
      namespace: 'vmgpu-system',
      body: { metadata: { name: 'configmap-reader' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: 'vmgpu-system',
      body: {
        metadata: { name: 'agent-configmap-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'vmgpu-system' }],
      },
    });
    await rbac.createClusterRole({
      body: { metadata: { name: 'vmgpu-node-reader' }, rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }] },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'vmgpu-node-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'vmgpu-node-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'vmgpu-system' }],
      },
    });
    // RBAC is evaluated from an informer cache: allow it a moment to catch up.
    await waitUntil('RoleBinding to take effect', 10_000, async () => {
      try {
        await saCore.listNamespacedConfigMap({ namespace: 'vmgpu-system' });
        return true;
      } catch (e) {
        if (httpCode(e) !== 403) throw e;
        return false;
      }
    });
    await waitUntil('ClusterRoleBinding to take effect', 10_000, async () => {
      try {
        return (await saCore.listNode()).items.length >= 0;
      } catch (e) {
        if (httpCode(e) !== 403) throw e;
        return false;
      }
    });
    // The bindings grant reading, nothing more.
    await expectCode(saCore.deleteNode({ name: 'cp-node-a' }), 403, 'delete node with read-only binding');
    await expectCode(saCore.listNamespacedSecret({ namespace: 'vmgpu-system' }), 403, 'list secrets with a configmap-only Role');
  });

  void test('a token bound to a Node stops working once the Node is deleted', async () => {
    await cp.createNode('cp-node-bound');
    const sa = await cp.serviceAccountKubeConfig('vmgpu-system', 'bound-agent', { boundTo: { kind: 'Node', name: 'cp-node-bound' } });
    const claims = JSON.parse(Buffer.from(sa.token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    const k8sClaims = claims['kubernetes.io'] as { node?: { name?: string } } | undefined;
    assert.equal(k8sClaims?.node?.name, 'cp-node-bound');
    const saCore = sa.kubeConfig.makeApiClient(CoreV1Api);
    // Authenticated (403 from RBAC, not 401).
    await expectCode(saCore.listNamespacedConfigMap({ namespace: 'vmgpu-system' }), 403, 'bound token while its Node exists');
    await core.deleteNode({ name: 'cp-node-bound' });
    // kube-apiserver caches a successful token authentication for 10 s, so the rejection
    // shows within about that long.
    await waitUntil('bound token to be rejected with 401', 30_000, async () => {
      try {
        await saCore.listNamespacedConfigMap({ namespace: 'vmgpu-system' });
        return false;
      } catch (e) {
        return httpCode(e) === 401;
      }
    });
  });

  void test('the Node authorizer and NodeRestriction confine a kubelet identity to its own Node', async () => {
    await cp.createNode('cp-node-self');
    await cp.createNode('cp-node-other');
    const kubelet = cp.nodeKubeConfig('cp-node-self').kubeConfig.makeApiClient(CoreV1Api);
    const own = await kubelet.patchNode({ name: 'cp-node-self', body: { metadata: { labels: { 'vmgpu.io/seen': 'yes' } } } }, mergePatch);
    assert.equal(own.metadata?.labels?.['vmgpu.io/seen'], 'yes');
    await expectCode(
      kubelet.patchNode({ name: 'cp-node-other', body: { metadata: { labels: { 'vmgpu.io/seen': 'yes' } } } }, mergePatch),
      403,
      'kubelet patching another node',
    );
  });

  void test('a ValidatingAdmissionPolicy that forbids changing a label is enforced', async () => {
    await cp.createNode('cp-node-vap', { 'vmgpu.io/locked': 'one' });
    const adm = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await adm.createValidatingAdmissionPolicy({
      body: {
        metadata: { name: 'vmgpu-lock-label' },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['nodes'] }] },
          validations: [
            {
              expression:
                "!has(oldObject.metadata.labels) || !('vmgpu.io/locked' in oldObject.metadata.labels) || " +
                "(has(object.metadata.labels) && 'vmgpu.io/locked' in object.metadata.labels && " +
                "object.metadata.labels['vmgpu.io/locked'] == oldObject.metadata.labels['vmgpu.io/locked'])",
              message: 'vmgpu.io/locked may not change',
            },
          ],
        },
      },
    });
    await adm.createValidatingAdmissionPolicyBinding({
      body: { metadata: { name: 'vmgpu-lock-label' }, spec: { policyName: 'vmgpu-lock-label', validationActions: ['Deny'] } },
    });
    // Policies become active a moment after they are created: probe with dry-run patches
    // (admission runs, nothing is stored) until one is denied.
    await waitUntil('the policy to deny a label change', 15_000, async () => {
      try {
        await core.patchNode({ name: 'cp-node-vap', dryRun: 'All', body: { metadata: { labels: { 'vmgpu.io/locked': 'two' } } } }, mergePatch);
        return false;
      } catch (e) {
        if (httpCode(e) !== 422 && httpCode(e) !== 403) throw e;
        return true;
      }
    });
    const denied = await expectCode(
      core.patchNode({ name: 'cp-node-vap', body: { metadata: { labels: { 'vmgpu.io/locked': 'two' } } } }, mergePatch),
      422,
      'changing the locked label',
    );
    assert.match(String((denied as { body?: unknown }).body), /vmgpu\.io\/locked may not change/);
    const n = await core.readNode({ name: 'cp-node-vap' });
    assert.equal(n.metadata?.labels?.['vmgpu.io/locked'], 'one');
    // Other changes still pass.
    await core.patchNode({ name: 'cp-node-vap', body: { metadata: { labels: { 'vmgpu.io/free': 'x' } } } }, mergePatch);
  });

  void test('the KubeVirt CRD registers and stores a KubeVirt object', async () => {
    const crd = await cp.registerCrd(kubevirtCrd());
    assert.equal(crd.spec.group, 'kubevirt.io');
    await core.createNamespace({ body: { metadata: { name: 'kubevirt' } } });
    const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    await custom.createNamespacedCustomObject({
      group: 'kubevirt.io',
      version: 'v1',
      namespace: 'kubevirt',
      plural: 'kubevirts',
      body: {
        apiVersion: 'kubevirt.io/v1',
        kind: 'KubeVirt',
        metadata: { name: 'kubevirt' },
        spec: { configuration: { permittedHostDevices: { mediatedDevices: [{ mdevNameSelector: 'NVIDIA H200-1-18C', resourceName: 'nvidia.com/NVIDIA_H200-1-18C' }] } } },
      },
    });
    const got = (await custom.getNamespacedCustomObject({ group: 'kubevirt.io', version: 'v1', namespace: 'kubevirt', plural: 'kubevirts', name: 'kubevirt' })) as {
      spec?: { configuration?: { permittedHostDevices?: { mediatedDevices?: Array<{ resourceName?: string }> } } };
    };
    assert.equal(got.spec?.configuration?.permittedHostDevices?.mediatedDevices?.[0]?.resourceName, 'nvidia.com/NVIDIA_H200-1-18C');
  });

  void test('helm installs a chart through the admin kubeconfig file', async () => {
    const chart = mkdtempSync(join(tmpdir(), 'vmgpu-chart-'));
    try {
      mkdirSync(join(chart, 'templates'));
      writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: cp-smoke\nversion: 0.1.0\n');
      writeFileSync(
        join(chart, 'templates', 'cm.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
      );
      writeFileSync(join(chart, 'values.yaml'), 'greeting: hello\n');
      const r = spawnSync(
        k8sTools().helm,
        ['install', 'smoke', chart, '--namespace', 'default', '--set', 'greeting=from-helm', '--kubeconfig', cp.kubeconfigPath],
        { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: chart } },
      );
      assert.equal(r.status, 0, `helm install failed: ${r.stderr}`);
      const cm = await core.readNamespacedConfigMap({ namespace: 'default', name: 'smoke-cm' });
      assert.equal(cm.data?.greeting, 'from-helm');
    } finally {
      rmSync(chart, { recursive: true, force: true });
    }
  });

  void test('memoryUsage reads the RSS of both processes', () => {
    const m = cp.memoryUsage();
    assert.ok(m.etcdRssKiB > 1024, `etcd RSS ${m.etcdRssKiB} KiB`);
    assert.ok(m.apiserverRssKiB > 10 * 1024, `kube-apiserver RSS ${m.apiserverRssKiB} KiB`);
  });
});

void describe('control plane failure paths and teardown', { timeout: 180_000 }, () => {
  void test('missing binaries: the error names the build command', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'vmgpu-nobin-'));
    try {
      await assert.rejects(startControlPlane({ binDir: empty }), (e: Error) => {
        assert.match(e.message, /not ready in/);
        assert.match(e.message, /node scripts\/build-k8s-tools\.mjs/);
        return true;
      });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  void test('a kube-apiserver that will not start: the error shows its last output and nothing is left behind', async () => {
    const before = liveControlPlaneDirs();
    await assert.rejects(startControlPlane({ apiServerArgs: ['--no-such-flag=1'] }), (e: Error) => {
      assert.match(e.message, /kube-apiserver exited/);
      assert.match(e.message, /unknown flag: --no-such-flag/);
      return true;
    });
    assert.deepEqual(liveControlPlaneDirs(), before);
  });

  void test('a port clash is retried on a new port, and stop() leaves no process, port or directory', async () => {
    // Accepted connections (the harness probing the taken port) are closed at once, so
    // close() below does not wait for them.
    const blocker: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const addr = blocker.address();
    assert.ok(addr && typeof addr === 'object');
    const taken = addr.port;
    let cp: ControlPlane | undefined;
    try {
      cp = await startControlPlane({ preferredPorts: { apiserver: taken } });
      assert.equal(cp.attempts, 2);
      assert.notEqual(new URL(cp.server).port, String(taken));
      const { etcd, apiserver } = cp.pids;
      const port = Number(new URL(cp.server).port);
      await cp.stop();
      assert.ok(!alive(etcd) && !alive(apiserver), 'processes must be gone after stop()');
      assert.ok(!existsSync(cp.dir), 'temporary directory must be removed');
      const probe = createServer();
      await new Promise<void>((r, j) => probe.once('error', j).listen(port, '127.0.0.1', r));
      await new Promise<void>((r) => probe.close(() => r()));
    } finally {
      await cp?.stop();
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    void test(`a test process ended by ${signal} leaves no control plane behind`, async () => {
      const script =
        "import { startControlPlane } from './test/harness/controlplane.ts';" +
        'const cp = await startControlPlane();' +
        'console.log(JSON.stringify({ pids: cp.pids, dir: cp.dir }));' +
        'setInterval(() => {}, 1000);';
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await waitUntil(`the child to start a control plane (stderr: ${err})`, 90_000, () => out.includes('\n') || child.exitCode !== null);
      const info = JSON.parse(out.split('\n')[0] ?? '') as { pids: { etcd: number; apiserver: number }; dir: string };
      assert.ok(alive(info.pids.etcd) && alive(info.pids.apiserver));
      child.kill(signal);
      await exited;
      // SIGTERM: the harness's signal hook cleans up at once; SIGKILL: its watchdog within ~1 s.
      await waitUntil('etcd and kube-apiserver to exit and the directory to go', 10_000, () => !alive(info.pids.etcd) && !alive(info.pids.apiserver) && !existsSync(info.dir));
    });
  }
});

void describe('build script failure messages', { timeout: 120_000 }, () => {
  const build = (env: Record<string, string>): { status: number | null; stderr: string } => {
    const cache = mkdtempSync(join(tmpdir(), 'vmgpu-buildfail-'));
    try {
      const r = spawnSync(process.execPath, ['scripts/build-k8s-tools.mjs'], { cwd: repo, encoding: 'utf8', env: { ...process.env, VMGPU_CACHE: cache, ...env } });
      return { status: r.status, stderr: r.stderr };
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  };

  void test('without Go it says to install Go and where', () => {
    const r = build({ VMGPU_GO: join(tmpdir(), 'vmgpu-no-such-dir', 'go') });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Go toolchain was not found/);
    assert.match(r.stderr, /https:\/\/go\.dev\/dl\//);
    assert.match(r.stderr, /node scripts\/build-k8s-tools\.mjs/);
  });

  void test('a failed module download names the module, the proxy and what to do', () => {
    const modcache = mkdtempSync(join(tmpdir(), 'vmgpu-modcache-'));
    try {
      const r = build({ GOPROXY: 'off', GOMODCACHE: modcache });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /could not download the Go modules/);
      assert.match(r.stderr, /GOPROXY=off/);
      assert.match(r.stderr, /module lookup disabled/);
    } finally {
      rmSync(modcache, { recursive: true, force: true });
    }
  });
});
