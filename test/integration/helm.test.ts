// The Helm chart (deploy/helm/vmgpu) with the real `helm` binary and a real kube-apiserver,
// both built by scripts/build-k8s-tools.mjs:
//   - `helm lint` and `helm template` pass for the default values and every examples/*.yaml,
//     and every config file the chart ships parses with vmgpu's own config parser;
//   - bad values fail at template time, naming the key (values.schema.json);
//   - the rendered manifests are accepted by the API server (server-side apply; the server
//     compiles the policy's CEL on create, and the enforcement test evaluates every expression);
//   - the ValidatingAdmissionPolicy confines an agent, holding a token bound to a pod on node
//     A, to node A and to the keys the agent contract allows;
//   - RBAC, checked with SubjectAccessReview, grants every verb the agent and the KubeVirt sync
//     use and refuses the ones they must not have.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
// The harness first: it checks that @kubernetes/client-node can load on this Node version.
import { k8sTools } from '../harness/k8s-tools.js';
import { kubevirtCrd, startControlPlane, type ControlPlane } from '../harness/controlplane.js';
import {
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1ResourceAttributes,
} from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig, type ConfigFile } from '../../src/spec/index.js';
import { createSimulatedNode } from '../../src/simulator/index.js';
import { openSimulated } from '../../src/machine/simulated.js';
import { PciIds } from '../../src/inventory/pciids.js';
import { plan as makePlan } from '../../src/plan/plan.js';

const repo = resolve(import.meta.dirname, '..', '..');
const chart = join(repo, 'deploy', 'helm', 'vmgpu');
const examplesDir = join(chart, 'examples');
const NS = 'vmgpu-system';
const RELEASE = 'vmgpu';
const AGENT_SA = 'vmgpu-agent';
const SYNC_SA = 'vmgpu-kubevirt-sync';
const CONFIG_MAP = 'vmgpu-config';
const CATALOG_MAP = 'vmgpu-catalog';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const tools = k8sTools(); // throws, saying what to run, when helm or kube-apiserver is missing
const scratch = mkdtempSync(join(tmpdir(), 'vmgpu-helm-test-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

interface K8sObject extends KubernetesObject {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  [key: string]: unknown;
}

function helm(args: string[]): { status: number; stdout: string; stderr: string } {
  // Helm keeps config, cache and data under HOME / XDG dirs: point them at the scratch dir.
  const r = spawnSync(tools.helm, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: scratch,
      HELM_CACHE_HOME: join(scratch, 'cache'),
      HELM_CONFIG_HOME: join(scratch, 'config'),
      HELM_DATA_HOME: join(scratch, 'data'),
    },
  });
  if (r.error) throw new Error(`could not run ${tools.helm} ${args.join(' ')}: ${r.error.message}`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function valuesArgs(values: string[]): string[] {
  return values.flatMap((v) => ['-f', v]);
}

function render(values: string[] = [], set: string[] = []): K8sObject[] {
  const r = helm(['template', RELEASE, chart, '--namespace', NS, ...valuesArgs(values), ...set.flatMap((s) => ['--set', s])]);
  assert.equal(r.status, 0, `helm template ${values.join(' ')} ${set.join(' ')} failed:\n${r.stderr}`);
  const docs = parseAllDocuments(r.stdout).map((d) => {
    assert.equal(d.errors.length, 0, `helm template produced invalid YAML: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as K8sObject | null;
  });
  return docs.filter((d): d is K8sObject => d !== null);
}

function find(objs: K8sObject[], kind: string, name?: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `no ${kind}${name ? ` ${name}` : ''} rendered; got ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

// Minimal typed views of what the tests read from rendered manifests.
interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext?: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  ports?: { name: string; containerPort: number }[];
}
interface PodSpec {
  containers: Container[];
  volumes: { name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string }; emptyDir?: object }[];
  priorityClassName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: { matchExpressions: { key: string; operator: string; values: string[] }[] }[] } } };
  hostNetwork?: boolean;
  hostPID?: boolean;
  serviceAccountName?: string;
}
function podSpec(o: K8sObject): PodSpec {
  return (o as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

const exampleFiles = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => join(examplesDir, f));

// Every host path the agent may mount, and where. Nothing else is allowed.
const ALLOWED_HOST_MOUNTS: Record<string, { mountPath: string; readOnly: boolean }> = {
  '/sys': { mountPath: '/sys', readOnly: false },
  '/dev/vfio': { mountPath: '/dev/vfio', readOnly: false },
  '/var/lib/kubelet/device-plugins': { mountPath: '/var/lib/kubelet/device-plugins', readOnly: false },
  '/var/lib/kubelet/pod-resources': { mountPath: '/var/lib/kubelet/pod-resources', readOnly: true },
  '/var/lib/vmgpu': { mountPath: '/var/lib/vmgpu', readOnly: false },
  '/usr/lib/nvidia': { mountPath: '/host/usr/lib/nvidia', readOnly: true },
  '/lib/modules': { mountPath: '/host/lib/modules', readOnly: true },
  // The host driver's nvidia-smi and libnvidia-ml (agent.driverRoot "/"): their directories, never the whole /.
  '/usr/bin': { mountPath: '/host/driver/usr/bin', readOnly: true },
  '/usr/lib/x86_64-linux-gnu': { mountPath: '/host/driver/usr/lib/x86_64-linux-gnu', readOnly: true },
};

function checkAgentDaemonSet(objs: K8sObject[], what: string): void {
  const ds = find(objs, 'DaemonSet');
  const spec = podSpec(ds);
  assert.equal(spec.priorityClassName, 'system-node-critical', `${what}: priorityClassName`);
  assert.ok(!spec.hostNetwork, `${what}: the agent must not use the host network`);
  assert.equal(spec.hostPID, true, `${what}: the host PID namespace, to see which VFIO devices VMs hold open (issue 11, defect 3)`);
  assert.equal(spec.containers.length, 1, `${what}: one container`);
  const c = spec.containers[0]!;
  assert.equal(c.args[0], 'agent', `${what}: runs \`vmgpu agent\``);
  assert.equal(c.securityContext?.privileged, true, `${what}: privileged (sysfs writes)`);
  for (const [name, path] of [
    ['NODE_NAME', 'spec.nodeName'],
    ['POD_NAMESPACE', 'metadata.namespace'],
  ] as const) {
    assert.equal(c.env.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath, path, `${what}: ${name} from the downward API`);
  }
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${what}: liveness`);
  assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${what}: readiness`);
  const port = c.ports?.find((p) => p.name === 'metrics');
  assert.ok(port, `${what}: metrics port`);
  assert.ok(c.args.includes(`--metrics-addr=0.0.0.0:${port.containerPort}`), `${what}: --metrics-addr matches the port: ${c.args.join(' ')}`);
  for (const flag of ['--config-file=/etc/vmgpu/config/config.yaml', '--state-dir=/var/lib/vmgpu', '--host-root=/host', '--driver-root=/host/driver', '--device-plugin-dir=/var/lib/kubelet/device-plugins', '--pod-resources-socket=/var/lib/kubelet/pod-resources/kubelet.sock']) {
    assert.ok(c.args.includes(flag), `${what}: missing ${flag} in ${c.args.join(' ')}`);
  }
  // Host mounts: only the allowed ones, at their places, read-only where required.
  const hostVolumes = spec.volumes.filter((v) => v.hostPath);
  for (const v of hostVolumes) {
    const allowed = ALLOWED_HOST_MOUNTS[v.hostPath!.path];
    assert.ok(allowed, `${what}: hostPath ${v.hostPath!.path} is not one the agent may mount`);
    const mounts = c.volumeMounts.filter((m) => m.name === v.name);
    assert.equal(mounts.length, 1, `${what}: volume ${v.name} mounted once`);
    assert.equal(mounts[0]!.mountPath, allowed.mountPath, `${what}: ${v.hostPath!.path} mount path`);
    if (allowed.readOnly) assert.equal(mounts[0]!.readOnly, true, `${what}: ${v.hostPath!.path} must be read-only`);
  }
  assert.equal(hostVolumes.length, Object.keys(ALLOWED_HOST_MOUNTS).length, `${what}: host volumes ${hostVolumes.map((v) => v.hostPath!.path).join(', ')}`);
  assert.ok(!c.volumeMounts.some((m) => m.mountPath === '/host'), `${what}: the host root itself is never mounted`);
  const cfg = spec.volumes.find((v) => v.configMap);
  assert.ok(cfg, `${what}: config volume`);
  assert.ok(!c.volumeMounts.some((m) => m.name === cfg.name && 'subPath' in m), `${what}: config mounted without subPath (so updates arrive)`);
}

void describe('helm chart: lint, template and schema', { timeout: 120_000 }, () => {
  void test('the chart and its examples are there', () => {
    assert.ok(exampleFiles.length >= 7, `expected the example values files in ${examplesDir}, found ${exampleFiles.length}`);
    for (const model of ['l40s', 'l4', 'h100', 'a100', 't4', 'passthrough', 'mixed']) {
      assert.ok(exampleFiles.some((f) => f.endsWith(`/${model}.yaml`)), `examples/${model}.yaml is missing`);
    }
  });

  for (const values of [null, ...exampleFiles]) {
    const label = values ? `examples/${values.split('/').pop()}` : 'default values';
    void test(`helm lint --strict and helm template: ${label}`, () => {
      const v = values ? [values] : [];
      const lint = helm(['lint', '--strict', chart, '--namespace', NS, ...valuesArgs(v)]);
      assert.equal(lint.status, 0, `helm lint ${label} failed:\n${lint.stdout}\n${lint.stderr}`);
      const objs = render(v);
      checkAgentDaemonSet(objs, label);

      // The config the chart ships parses with vmgpu's parser, and the default config exists in it.
      const merged = { ...(parseYaml(readFileSync(join(chart, 'values.yaml'), 'utf8')) as { agent: { defaultConfig: string } }) };
      const override = values ? (parseYaml(readFileSync(values, 'utf8')) as { agent?: { defaultConfig?: string } } | null) : null;
      const cm = find(objs, 'ConfigMap', CONFIG_MAP) as unknown as { data: Record<string, string> };
      const file = parseConfig(cm.data['config.yaml'] ?? '', `${label}:config.yaml`);
      const names = file.configs.map((c) => c.name);
      assert.ok(names.length > 0, `${label}: no configs`);
      const defaultConfig = override?.agent?.defaultConfig ?? merged.agent.defaultConfig;
      assert.ok(names.includes(defaultConfig), `${label}: agent.defaultConfig ${defaultConfig} is not one of ${names.join(', ')}`);
      const env = podSpec(find(objs, 'DaemonSet')).containers[0]!.env;
      assert.equal(env.find((e) => e.name === 'DEFAULT_VGPU_CONFIG')?.value, defaultConfig);
    });
  }

  // Each shipped config must fit the card it is written for: plan it against a simulated node
  // of that card (4 GPUs, so index-based entries find their GPUs) and expect no plan errors.
  // Configs that pick GPUs by PCI address are for a specific machine and are only parsed.
  const cards: [RegExp, string, 'sriov-vgpu' | 'mdev-vgpu'][] = [
    [/^(l40s|default|mixed|passthrough|host|fleet|half)/, 'L40S', 'sriov-vgpu'],
    [/^l4-/, 'L4', 'sriov-vgpu'],
    [/^h100/, 'H100', 'sriov-vgpu'],
    [/^a100/, 'A100-40GB', 'mdev-vgpu'],
    [/^t4/, 'T4', 'mdev-vgpu'],
  ];
  void test('every shipped config plans without errors on simulated hardware of its card', async () => {
    const planned: string[] = [];
    for (const values of [join(chart, 'values.yaml'), ...exampleFiles]) {
      const content = (parseYaml(readFileSync(values, 'utf8')) as { config?: { content?: string } }).config?.content;
      if (!content) continue;
      const file: ConfigFile = parseConfig(content, values);
      for (const config of file.configs) {
        if (config.entries.some((e) => e.pciAddresses !== null)) continue;
        const card = cards.find(([re]) => re.test(config.name));
        assert.ok(card, `${values}: config ${config.name} has no card to be checked on; add it to the table in this test`);
        const sim = createSimulatedNode({ gpus: [{ model: card[1], count: 4, mode: card[2] }] });
        // The node as the agent sees it, host tools included (MIG mode is read with nvidia-smi).
        const inv = await openSimulated(sim, { pciIds: PciIds.empty() }).inventory();
        const p = makePlan(inv, file, config, { nodeId: 'helm-test' });
        assert.deepEqual(p.errors, [], `${values}: config ${config.name} cannot be applied on 4 x ${card[1]}`);
        assert.deepEqual(p.undetermined, [], `${values}: config ${config.name} leaves GPUs undetermined on 4 x ${card[1]}`);
        if (!/^(host)$/.test(config.name)) assert.ok(p.actions.length > 0, `${values}: config ${config.name} changes nothing on a fresh ${card[1]} node`);
        planned.push(`${values.split('/').pop()}:${config.name}`);
      }
    }
    assert.ok(planned.length >= 30, `only ${planned.length} configs were planned: ${planned.join(', ')}`);
  });

  // The flags the chart passes must be ones `vmgpu` accepts: run the real CLI with them. Outside
  // a pod it stops at the in-cluster config, after parsing every flag.
  void test("the rendered agent and sync arguments are accepted by vmgpu's own flag parser", () => {
    const objs = render([], ['config.readThroughApi=true', 'agent.iommufd=true', 'kubevirtSync.enabled=true', 'agent.extraArgs[0]=--pending-recheck=5s']);
    for (const kind of ['DaemonSet', 'Deployment']) {
      const args = podSpec(find(objs, kind)).containers[0]!.args;
      const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_NAME: 'node-a', POD_NAMESPACE: NS, HOME: scratch };
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'src', 'cli', 'main.ts'), ...args], { encoding: 'utf8', timeout: 60_000, env, cwd: repo });
      assert.match(r.stderr, /not running in a pod \(KUBERNETES_SERVICE_HOST is unset\)/, `${kind}: vmgpu ${args.join(' ')} did not get past flag parsing:\n${r.stderr}`);
    }
  });

  void test('defaults: image ghcr.io/vmgpu/vmgpu:<appVersion>, VM nodes (and container nodes still marked vmgpu.io/managed), least-privilege RBAC, the policy', () => {
    const appVersion = (parseYaml(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string }).appVersion;
    const objs = render();
    const spec = podSpec(find(objs, 'DaemonSet'));
    assert.equal(spec.containers[0]!.image, `ghcr.io/vmgpu/vmgpu:${appVersion}`);
    const expr = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions[0];
    assert.deepEqual(expr, { key: 'nvidia.com/gpu.workload.config', operator: 'In', values: ['vm-vgpu', 'vm-passthrough'] });
    // A node moved to container keeps the agent until it gave the GPUs back (node-workload.test.ts).
    assert.deepEqual(spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[1]?.matchExpressions, [
      { key: 'nvidia.com/gpu.workload.config', operator: 'In', values: ['container'] },
      { key: 'vmgpu.io/managed', operator: 'In', values: ['true'] },
    ]);
    const role = find(objs, 'ClusterRole') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    assert.deepEqual(
      role.rules.map((r) => `${r.apiGroups.join(',')}/${r.resources.join(',')}:${[...r.verbs].sort().join(',')}`),
      ['/nodes:get,list,patch,watch', '/events:create,patch'],
    );
    const roles = objs.filter((o) => o.kind === 'Role') as unknown as { metadata: { name: string }; rules: { resources: string[]; resourceNames?: string[]; verbs: string[] }[] }[];
    assert.deepEqual(
      roles.map((r) => [r.metadata.name, r.rules]),
      [[CATALOG_MAP, [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [CATALOG_MAP], verbs: ['get', 'list', 'watch', 'patch'] }]]],
      'one namespaced Role without config.readThroughApi: the cluster catalog, that one ConfigMap only',
    );
    assert.ok(!render([], ['clusterCatalog.enabled=false']).some((o) => o.kind === 'Role' || o.metadata.name === CATALOG_MAP), 'no catalog, no Role');
    assert.ok(!objs.some((o) => o.kind === 'Deployment'), 'the KubeVirt sync is off by default');
    assert.ok(!objs.some((o) => o.kind === 'ServiceMonitor'), 'the ServiceMonitor is off by default');
    find(objs, 'ValidatingAdmissionPolicy', `${AGENT_SA}-own-node`);
    find(objs, 'ValidatingAdmissionPolicyBinding', `${AGENT_SA}-own-node`);
  });

  void test('overrides: image digest and tag, nodeSelector, tolerations, affinity, readThroughApi', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    let objs = render([], [`image.digest=${digest}`, 'image.repository=registry.example.com/vmgpu']);
    assert.equal(podSpec(find(objs, 'DaemonSet')).containers[0]!.image, `registry.example.com/vmgpu@${digest}`);
    objs = render([], ['image.tag=0.2.0-rc.1', 'agent.nodeSelector.gpu=yes', 'agent.tolerations[0].key=dedicated', 'agent.tolerations[0].operator=Exists']);
    let spec = podSpec(find(objs, 'DaemonSet'));
    assert.equal(spec.containers[0]!.image, 'ghcr.io/vmgpu/vmgpu:0.2.0-rc.1');
    assert.deepEqual(spec.nodeSelector, { gpu: 'yes' });
    assert.deepEqual(spec.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
    objs = render([], ['agent.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=example.com/vm', 'agent.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists']);
    spec = podSpec(find(objs, 'DaemonSet'));
    assert.deepEqual(spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms[0]?.matchExpressions, [{ key: 'example.com/vm', operator: 'Exists' }]);
    objs = render([], ['config.readThroughApi=true']);
    assert.ok(podSpec(find(objs, 'DaemonSet')).containers[0]!.args.includes(`--config-map=${NS}/${CONFIG_MAP}`));
    const role = find(objs, 'Role', 'vmgpu-agent') as unknown as { rules: { resources: string[]; resourceNames?: string[]; verbs: string[] }[] };
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['configmaps'], resourceNames: [CONFIG_MAP], verbs: ['get', 'list', 'watch'] }]);
  });

  void test('agent.hostPID=false renders a pod without the host PID namespace (the agent then changes no GPU; node-safety.test.ts)', () => {
    assert.equal(podSpec(find(render([], ['agent.hostPID=false']), 'DaemonSet')).hostPID, false);
  });

  void test("the host driver's tools: a host install mounts two directories read-only, the GPU Operator's root whole, none when unset", () => {
    type Mount = { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string };
    const driverMounts = (sets: string[]) => {
      const spec = podSpec(find(render([], sets), 'DaemonSet'));
      const c = spec.containers[0]!;
      const mounts = (c.volumeMounts as Mount[]).filter((m) => m.mountPath.startsWith('/host/driver'));
      const paths = mounts.map((m) => spec.volumes.find((v) => v.name === m.name)?.hostPath?.path);
      return { args: c.args, mounts, paths };
    };
    const host = driverMounts([]);
    assert.deepEqual(host.paths, ['/usr/bin', '/usr/lib/x86_64-linux-gnu']);
    assert.ok(host.mounts.every((m) => m.readOnly === true));
    assert.ok(host.args.includes('--driver-root=/host/driver'));
    const rhel = driverMounts(['agent.driverRootDirs={/usr/bin,/usr/lib64}']);
    assert.deepEqual(rhel.paths, ['/usr/bin', '/usr/lib64']);
    const operator = driverMounts(['agent.driverRoot=/run/nvidia/driver']);
    assert.deepEqual(operator.paths, ['/run/nvidia/driver']);
    assert.deepEqual(operator.mounts.map((m) => [m.mountPath, m.readOnly, m.mountPropagation]), [['/host/driver', true, 'HostToContainer']]);
    const none = driverMounts(['agent.driverRoot=']);
    assert.deepEqual(none.mounts, []);
    assert.ok(!none.args.some((a) => a.startsWith('--driver-root')));
  });

  // Each bad value must fail `helm template` (and so `helm install`) naming what is wrong.
  const bad: [string, string, RegExp][] = [
    ['unknown top-level key', 'agnet:\n  logLevel: info\n', /additional properties 'agnet' not allowed/],
    ['unknown nested key', 'agent:\n  logLevle: debug\n', /\/agent.*additional properties 'logLevle' not allowed/s],
    ['log level', 'agent:\n  logLevel: verbose\n', /\/agent\/logLevel/],
    ['validate interval the agent cannot parse', 'agent:\n  validateInterval: 1h30m\n', /\/agent\/validateInterval/],
    ['port type', 'agent:\n  metricsPort: "9400"\n', /\/agent\/metricsPort/],
    ['port range', 'agent:\n  metricsPort: 70000\n', /\/agent\/metricsPort/],
    ['relative host path', 'agent:\n  hostPaths:\n    sys: sys\n', /\/agent\/hostPaths\/sys/],
    ['host path with ..', 'agent:\n  hostPaths:\n    stateDir: /var/lib/../../etc\n', /\/agent\/hostPaths\/stateDir/],
    ['driver directory that is not a binary or library directory', 'agent:\n  driverRootDirs: [/etc]\n', /\/agent\/driverRootDirs\/0/],
    ['driver directory with ..', 'agent:\n  driverRootDirs: [/usr/lib/../../etc]\n', /\/agent\/driverRootDirs\/0/],
    ['image digest', 'image:\n  digest: latest\n', /\/image\/digest/],
    ['extra arg that is not a flag', 'agent:\n  extraArgs: ["; rm -rf /"]\n', /\/agent\/extraArgs\/0/],
    ['workload config', 'agent:\n  workloadConfigs: [vm-gpu]\n', /\/agent\/workloadConfigs\/0/],
    ['Deny with Warn', 'admissionPolicy:\n  validationActions: [Deny, Warn]\n', /\/admissionPolicy\/validationActions/],
    ['config version', 'config:\n  content: "version: v2\\nvgpu-configs: {}\\n"\n', /\/config\/content/],
    ['existing ConfigMap missing', 'config:\n  create: false\n', /\/config\/existingConfigMap/],
    ['unknown default config', 'agent:\n  defaultConfig: l40s-99q\n', /agent\.defaultConfig "l40s-99q" is not a config in config\.content/],
    ['config not YAML', 'config:\n  content: "version: v1\\nvgpu-configs: [unclosed\\n"\n', /config\.content is not valid YAML/],
    ['sync namespace', 'kubevirtSync:\n  enabled: true\n  kubevirtNamespace: Not_A_Namespace\n', /\/kubevirtSync\/kubevirtNamespace/],
  ];
  for (const [what, text, expect] of bad) {
    void test(`a bad values file fails: ${what}`, () => {
      const file = join(scratch, `bad-${what.replace(/[^a-z0-9]+/gi, '-')}.yaml`);
      writeFileSync(file, text);
      const r = helm(['template', RELEASE, chart, '--namespace', NS, '-f', file]);
      assert.notEqual(r.status, 0, `helm template accepted bad values (${what}):\n${text}`);
      assert.match(r.stderr, expect, `helm template failed, but not naming the problem (${what}):\n${r.stderr}`);
    });
  }

  void test('helm lint fails on a bad values file too', () => {
    const file = join(scratch, 'bad-lint.yaml');
    writeFileSync(file, 'agent:\n  logLevel: loud\n');
    const r = helm(['lint', chart, '-f', file]);
    assert.notEqual(r.status, 0, 'helm lint accepted agent.logLevel: loud');
    assert.match(`${r.stdout}${r.stderr}`, /\/agent\/logLevel/);
  });
});

// ---- on a real API server ---------------------------------------------------------------

function httpCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

function errorText(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  return typeof body === 'string' ? body : body !== undefined ? JSON.stringify(body) : String(e);
}

async function expectDenied(p: Promise<unknown>, what: string, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.equal(httpCode(e), 403, `${what}: expected HTTP 403, got ${String(httpCode(e))}: ${errorText(e)}`);
    assert.match(errorText(e), message, `${what}: denied, but not by the expected rule`);
    return;
  }
  assert.fail(`${what}: expected a 403 from the admission policy, but the request succeeded`);
}

const monitoringCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'servicemonitors.monitoring.coreos.com' },
  spec: {
    group: 'monitoring.coreos.com',
    names: { kind: 'ServiceMonitor', listKind: 'ServiceMonitorList', plural: 'servicemonitors', singular: 'servicemonitor' },
    scope: 'Namespaced' as const,
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        // client-node's model spells the field x_kubernetes_preserve_unknown_fields (sent as x-kubernetes-...).
        schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } } },
      },
    ],
  },
};

void describe('helm chart on a real kube-apiserver: server-side apply, admission policy, RBAC', { timeout: 180_000 }, () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let objs: K8sObject[];

  before(async () => {
    // Like every real cluster that runs node agents (kubeadm sets it too): privileged pods allowed.
    cp = await startControlPlane({ apiServerArgs: ['--allow-privileged=true'] });
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    for (const name of [NS, 'kubevirt']) await core.createNamespace({ body: { metadata: { name } } });
    await cp.registerCrd(kubevirtCrd());
    await cp.registerCrd(monitoringCrd);
    // Everything on: the sync, the ServiceMonitor, the API-read config.
    objs = render([], ['kubevirtSync.enabled=true', 'metrics.serviceMonitor.enabled=true', 'config.readThroughApi=true']);
    for (const o of objs) {
      try {
        await apply(o);
      } catch (e) {
        throw new Error(`server-side apply of ${o.kind} ${o.metadata.name} was rejected: ${errorText(e)}`, { cause: e });
      }
    }
  });
  after(async () => {
    await cp?.stop();
  });

  // Server-side apply. client-node's typed serializer drops the fields of kinds it does not
  // know (ServiceMonitor), so custom resources go through CustomObjectsApi untouched.
  function isCustom(o: K8sObject): boolean {
    return o.apiVersion?.startsWith('monitoring.coreos.com/') === true;
  }
  async function apply(o: K8sObject): Promise<K8sObject> {
    if (!isCustom(o)) return KubernetesObjectApi.makeApiClient(cp.kubeConfig).patch(o, undefined, undefined, 'vmgpu-helm-test', true, PatchStrategy.ServerSideApply);
    const [group, version] = o.apiVersion!.split('/') as [string, string];
    return (await cp.kubeConfig.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject(
      { group, version, namespace: o.metadata.namespace ?? NS, plural: `${o.kind.toLowerCase()}s`, name: o.metadata.name, body: o, fieldManager: 'vmgpu-helm-test', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    )) as K8sObject;
  }
  async function read(o: K8sObject): Promise<K8sObject> {
    if (!isCustom(o)) return KubernetesObjectApi.makeApiClient(cp.kubeConfig).read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace } });
    const [group, version] = o.apiVersion!.split('/') as [string, string];
    return (await cp.kubeConfig.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group, version, namespace: o.metadata.namespace ?? NS, plural: `${o.kind.toLowerCase()}s`, name: o.metadata.name })) as K8sObject;
  }

  void test('every rendered object is stored, and applying again changes nothing', async () => {
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ['ServiceAccount', 'ConfigMap', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service', 'DaemonSet', 'Deployment', 'ServiceMonitor', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']) {
      assert.ok(kinds.has(k), `no ${k} rendered`);
    }
    for (const o of objs) {
      const got = await read(o);
      const rv = got.metadata?.resourceVersion;
      assert.ok(rv, `${o.kind} ${o.metadata.name} was not stored`);
      if (o.kind === 'ServiceMonitor') assert.deepEqual(got.spec, o.spec, 'the ServiceMonitor spec is stored as rendered');
      const again = await apply(o);
      assert.equal(again.metadata?.resourceVersion, rv, `re-applying ${o.kind} ${o.metadata.name} changed it`);
    }
  });

  void test("an agent may change only its own Node, and only the contract's keys", async () => {
    await cp.createNode('node-a', { 'nvidia.com/gpu.workload.config': 'vm-vgpu', 'nvidia.com/vgpu.config': 'l40s-24q' });
    await cp.createNode('node-b', { 'nvidia.com/gpu.workload.config': 'vm-vgpu' });
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'agent-on-a' },
        spec: { nodeName: 'node-a', serviceAccountName: AGENT_SA, containers: [{ name: 'agent', image: 'ghcr.io/vmgpu/vmgpu:test' }] },
      },
    });
    const creds = await cp.serviceAccountKubeConfig(NS, AGENT_SA, { boundTo: { kind: 'Pod', name: 'agent-on-a' }, create: false });
    const agent = creds.kubeConfig.makeApiClient(CoreV1Api);
    const claims = JSON.parse(Buffer.from(creds.token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { 'kubernetes.io'?: { node?: { name?: string } } };
    assert.equal(claims['kubernetes.io']?.node?.name, 'node-a', 'the pod-bound token names the pod\'s node');

    // RBAC and the policy are loaded from informers: wait (with dry-run, nothing is written)
    // until a change to node B is refused by the policy.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await agent.patchNode({ name: 'node-b', dryRun: 'All', body: { metadata: { labels: { 'nvidia.com/vgpu.config.state': 'success' } } } }, mergePatch);
      } catch (e) {
        if (httpCode(e) === 403 && /may not change node node-b/.test(errorText(e))) break;
        if (httpCode(e) !== 403) throw e; // RBAC not loaded yet gives 403 without the policy's message
      }
      if (Date.now() > deadline) assert.fail('the admission policy did not start refusing changes to another node within 30 s');
      await sleep(200);
    }

    await expectDenied(
      agent.patchNode({ name: 'node-b', body: { metadata: { labels: { 'nvidia.com/vgpu.config.state': 'success' } } } }, mergePatch),
      'agent of node-a labelling node-b',
      /the vmgpu agent on node node-a may not change node node-b/,
    );
    assert.equal((await core.readNode({ name: 'node-b' })).metadata?.labels?.['nvidia.com/vgpu.config.state'], undefined, 'node-b unchanged');

    const status = JSON.stringify({ config: 'l40s-24q', state: 'success', reason: '', gpus: [], blocked: [], errors: [] });
    const own = await agent.patchNode(
      {
        name: 'node-a',
        body: {
          metadata: {
            labels: { 'nvidia.com/vgpu.config.state': 'success', 'vmgpu.io/validation': 'passed' },
            annotations: { 'vmgpu.io/status': status, 'vmgpu.io/permitted-host-devices': '{"pciHostDevices":[],"mediatedDevices":[]}' },
          },
        },
      },
      mergePatch,
    );
    assert.equal(own.metadata?.labels?.['nvidia.com/vgpu.config.state'], 'success');
    assert.equal(own.metadata?.annotations?.['vmgpu.io/status'], status);
    // Removing its own keys is allowed too.
    const removed = await agent.patchNode({ name: 'node-a', body: { metadata: { labels: { 'vmgpu.io/validation': null } } } }, mergePatch);
    assert.equal(removed.metadata?.labels?.['vmgpu.io/validation'], undefined);

    await expectDenied(
      agent.patchNode({ name: 'node-a', body: { metadata: { labels: { 'nvidia.com/vgpu.config': 'passthrough' } } } }, mergePatch),
      'agent changing the config selector label on its own node',
      /may change only the label nvidia\.com\/vgpu\.config\.state and vmgpu\.io\/\* labels; refused: nvidia\.com\/vgpu\.config(?!\.state)/,
    );
    await expectDenied(
      agent.patchNode({ name: 'node-a', body: { metadata: { labels: { 'nvidia.com/gpu.workload.config': null } } } }, mergePatch),
      'agent removing the workload label from its own node',
      /refused: nvidia\.com\/gpu\.workload\.config/,
    );
    await expectDenied(
      agent.patchNode({ name: 'node-a', body: { metadata: { annotations: { 'example.com/owner': 'me' } } } }, mergePatch),
      'agent adding a foreign annotation',
      /may change only vmgpu\.io\/\* annotations; refused: example\.com\/owner/,
    );
    await expectDenied(
      agent.patchNode({ name: 'node-a', body: { spec: { unschedulable: true } } }, mergePatch),
      'agent cordoning its own node',
      /may not change a Node's spec/,
    );
    const a = await core.readNode({ name: 'node-a' });
    assert.equal(a.metadata?.labels?.['nvidia.com/vgpu.config'], 'l40s-24q');
    assert.equal(a.spec?.unschedulable, undefined);

    // A token of the same ServiceAccount that is not bound to a pod carries no node name.
    const unbound = (await cp.serviceAccountKubeConfig(NS, AGENT_SA, { create: false })).kubeConfig.makeApiClient(CoreV1Api);
    await expectDenied(
      unbound.patchNode({ name: 'node-a', body: { metadata: { labels: { 'nvidia.com/vgpu.config.state': 'failed' } } } }, mergePatch),
      'agent token without a pod binding',
      /carries no node name/,
    );

    // The policy is about the agent only: an administrator still labels any node.
    const b = await core.patchNode({ name: 'node-b', body: { metadata: { labels: { 'nvidia.com/vgpu.config': 'l40s-12q' } } } }, mergePatch);
    assert.equal(b.metadata?.labels?.['nvidia.com/vgpu.config'], 'l40s-12q');
  });

  async function sar(user: string, ns: string, attrs: V1ResourceAttributes): Promise<boolean> {
    const authz = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
    const r = await authz.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user: `system:serviceaccount:${ns}:${user}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'], resourceAttributes: attrs },
      },
    });
    return r.status?.allowed === true;
  }

  function describeAttrs(a: V1ResourceAttributes): string {
    return `${a.verb} ${a.group ? `${a.resource}.${a.group}` : a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.name ? ` ${a.name}` : ''}${a.namespace ? ` in ${a.namespace}` : ''}`;
  }

  async function checkAccess(sa: string, allowed: V1ResourceAttributes[], denied: V1ResourceAttributes[]): Promise<void> {
    // RBAC is served from an informer cache: wait until the first grant is visible.
    const deadline = Date.now() + 15_000;
    while (!(await sar(sa, NS, allowed[0]!))) {
      if (Date.now() > deadline) assert.fail(`${sa}: ${describeAttrs(allowed[0]!)} still not allowed after 15 s`);
      await sleep(200);
    }
    const wrong: string[] = [];
    for (const a of allowed) if (!(await sar(sa, NS, a))) wrong.push(`should be allowed: ${describeAttrs(a)}`);
    for (const a of denied) if (await sar(sa, NS, a)) wrong.push(`should be denied: ${describeAttrs(a)}`);
    assert.deepEqual(wrong, [], `${sa} RBAC`);
  }

  void test('RBAC of the agent (SubjectAccessReview): what it uses, and nothing it must not have', async () => {
    const kv = { group: 'kubevirt.io', resource: 'kubevirts', namespace: 'kubevirt', name: 'kubevirt' };
    await checkAccess(
      AGENT_SA,
      [
        { verb: 'get', resource: 'nodes', name: 'node-a' },
        { verb: 'list', resource: 'nodes' },
        { verb: 'watch', resource: 'nodes' },
        { verb: 'patch', resource: 'nodes', name: 'node-a' },
        { verb: 'create', resource: 'events', namespace: 'default' },
        { verb: 'patch', resource: 'events', namespace: 'default' },
        { verb: 'get', resource: 'configmaps', namespace: NS, name: CONFIG_MAP },
        { verb: 'list', resource: 'configmaps', namespace: NS, name: CONFIG_MAP },
        { verb: 'watch', resource: 'configmaps', namespace: NS, name: CONFIG_MAP },
        // The cluster catalog: read and merge-patch that one ConfigMap.
        { verb: 'get', resource: 'configmaps', namespace: NS, name: CATALOG_MAP },
        { verb: 'list', resource: 'configmaps', namespace: NS, name: CATALOG_MAP },
        { verb: 'watch', resource: 'configmaps', namespace: NS, name: CATALOG_MAP },
        { verb: 'patch', resource: 'configmaps', namespace: NS, name: CATALOG_MAP },
      ],
      [
        { verb: 'delete', resource: 'configmaps', namespace: NS, name: CATALOG_MAP },
        { verb: 'update', resource: 'configmaps', namespace: NS, name: CATALOG_MAP },
        { verb: 'patch', resource: 'configmaps', namespace: NS, name: CONFIG_MAP },
        { verb: 'patch', resource: 'configmaps', namespace: NS, name: 'other' },
        { verb: 'create', resource: 'configmaps', namespace: NS },
        { verb: 'delete', resource: 'nodes', name: 'node-a' },
        { verb: 'update', resource: 'nodes', name: 'node-a' },
        { verb: 'create', resource: 'nodes' },
        { verb: 'patch', resource: 'nodes', subresource: 'status', name: 'node-a' },
        { verb: 'get', resource: 'secrets', namespace: NS },
        { verb: 'list', resource: 'secrets', namespace: 'kube-system' },
        { verb: 'patch', resource: 'pods', namespace: NS },
        { verb: 'create', resource: 'pods', namespace: NS },
        { verb: 'get', resource: 'configmaps', namespace: NS, name: 'other' },
        { verb: 'list', resource: 'configmaps', namespace: NS },
        { verb: 'update', ...kv },
        { verb: 'get', ...kv },
        { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: NS },
        { verb: 'delete', resource: 'events', namespace: 'default' },
      ],
    );
  });

  void test('RBAC of the KubeVirt sync (SubjectAccessReview): what it uses, and nothing it must not have', async () => {
    const kv = { group: 'kubevirt.io', resource: 'kubevirts', namespace: 'kubevirt' };
    const lease = { group: 'coordination.k8s.io', resource: 'leases', namespace: NS };
    await checkAccess(
      SYNC_SA,
      [
        { verb: 'get', ...kv, name: 'kubevirt' },
        { verb: 'list', ...kv },
        { verb: 'watch', ...kv },
        { verb: 'patch', ...kv, name: 'kubevirt' },
        { verb: 'update', ...kv, name: 'kubevirt' },
        { verb: 'get', resource: 'nodes', name: 'node-a' },
        { verb: 'list', resource: 'nodes' },
        { verb: 'watch', resource: 'nodes' },
        { verb: 'create', ...lease },
        { verb: 'get', ...lease, name: 'vmgpu-kubevirt-sync' },
        { verb: 'update', ...lease, name: 'vmgpu-kubevirt-sync' },
        { verb: 'create', resource: 'events', namespace: NS },
        { verb: 'create', resource: 'events', namespace: 'kubevirt' },
      ],
      [
        { verb: 'patch', resource: 'nodes', name: 'node-a' },
        { verb: 'delete', ...kv, name: 'kubevirt' },
        { verb: 'create', ...kv },
        { verb: 'update', group: 'kubevirt.io', resource: 'kubevirts', namespace: 'default', name: 'kubevirt' },
        { verb: 'list', group: 'kubevirt.io', resource: 'kubevirts' },
        { verb: 'get', resource: 'secrets', namespace: NS },
        { verb: 'patch', resource: 'pods', namespace: 'kubevirt' },
        { verb: 'update', ...lease, name: 'some-other-lease' },
        { verb: 'delete', ...lease, name: 'vmgpu-kubevirt-sync' },
        { verb: 'create', ...lease, namespace: 'kube-system' },
        { verb: 'get', resource: 'configmaps', namespace: NS, name: CONFIG_MAP },
      ],
    );
  });
});
