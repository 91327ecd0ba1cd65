// vmgpu through a real Kubernetes node (test/harness/node.ts): kube-apiserver, etcd,
// kube-controller-manager, kube-scheduler, containerd and a kubelet at the pinned versions,
// with a simulated L40S as the hardware. The agent runs as the Helm chart renders it
// (test/harness/chart-agent.ts); pods are scheduled by the real scheduler, admitted by the
// real kubelet and started by containerd + runc.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startGpuNode, type GpuNode } from '../harness/gpu-node.js';
import { deletePodAndWait, PodResourcesReader, probePod, probeResult, type ProbeResult } from '../harness/node-pods.js';
import { pinnedVersions } from '../harness/k8s-tools.js';
import { loadSimulation, SimHostTools } from '../../src/simulator/index.js';
import { enrichWithHostTools, readInventory } from '../../src/inventory/read.js';
import { runDevicePlugins } from '../../src/serve/deviceplugin/manager.js';
import { memoryLogger } from '../../src/serve/kube/logger.js';
import { ANNOTATION_STATUS, LABEL_CONFIG, LABEL_STATE, LABEL_WORKLOAD } from '../../src/serve/agent/desired.js';
import { eventually } from '../support/wait.js';
import { L40S_12Q_24Q } from './agent-helpers.js';

const RESOURCE = 'nvidia.com/L40S-12Q';
const CONFIG = L40S_12Q_24Q;
const T = { timeout: 180_000 };

describe('vmgpu on a real Kubernetes node', { timeout: 1_200_000 }, () => {
  let g: GpuNode;
  const tenant = 'tenant';

  const node = () => g.core.readNode({ name: g.node.name });
  const allocatable = async (r = RESOURCE) => Number((await node()).status?.allocatable?.[r] ?? '0');
  const state = async () => (await node()).metadata?.labels?.[LABEL_STATE];
  const status = async () => JSON.parse((await node()).metadata?.annotations?.[ANNOTATION_STATUS] ?? 'null') as { state: string; config: string; blocked: { device: string; reason: string }[] } | null;
  const podResources = async <V>(fn: (r: PodResourcesReader) => Promise<V>): Promise<V> => {
    const r = new PodResourcesReader(g.node.podResourcesSocket);
    try {
      return await fn(r);
    } finally {
      r.close();
    }
  };
  const profileCount = async (p: string) => Object.values(await g.vfProfiles()).filter((x) => x === p).length;
  const appliedEvents = async () => (await g.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${g.node.name}` })).items.filter((e) => e.reason === 'VgpuConfigApplied').length;

  before(async () => {
    g = await startGpuNode({ config: CONFIG, labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'l40s-12q' } });
    await g.core.createNamespace({ body: { metadata: { name: tenant } } });
    await eventually('the default ServiceAccount in the tenant namespace (serviceaccount controller)', () => g.core.readNamespacedServiceAccount({ namespace: tenant, name: 'default' }));
  });
  after(() => g?.stop());

  test('the node runs the pinned kubelet and containerd, and is Ready and schedulable', async (t) => {
    const v = pinnedVersions();
    const n = await node();
    assert.equal(n.status?.nodeInfo?.kubeletVersion, v.kubernetes);
    assert.equal(n.status?.nodeInfo?.containerRuntimeVersion, `containerd://${v.containerd.slice(1)}`);
    assert.ok(n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    assert.deepEqual((n.spec?.taints ?? []).filter((x) => x.key.startsWith('node.kubernetes.io/')), [], 'kube-controller-manager lifted the not-ready taint');
    t.diagnostic(`node start-up ${g.node.startupMs} ms ${JSON.stringify(g.node.timings)}; RSS KiB ${JSON.stringify(g.node.memoryUsage())}`);
  });

  test('the agent, run with the flags, env and mounts the chart renders, applies the config; the kubelet advertises it', T, async () => {
    const c = (g.rendered.find((x) => x.kind === 'DaemonSet') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!;
    assert.deepEqual(
      g.agent.args.filter((a) => !a.startsWith('--simulate=')),
      c.args.filter((a) => a !== '--sysfs-root=/sys'),
      'every rendered flag but the one substitution',
    );
    assert.equal(g.agent.env.NODE_NAME, g.node.name, 'NODE_NAME from the downward API');
    const pid = g.agent.agentPid();
    assert.ok(pid > 0, 'the agent process runs');
    assert.equal(readlinkSync(`/proc/${pid}/ns/pid`), readlinkSync('/proc/self/ns/pid'), 'the chart sets hostPID: the agent sees the host\'s processes (and the VMs holding VFIO devices)');
    assert.notEqual(readlinkSync(`/proc/${pid}/ns/mnt`), readlinkSync('/proc/self/ns/mnt'), 'the agent sees only its mounts');
    await eventually('state success', async () => (await state()) === 'success');
    assert.equal(await profileCount('L40S-12Q'), 4, `VFs: ${JSON.stringify(await g.vfProfiles())}`);
    await eventually(`Node allocatable ${RESOURCE}=4`, async () => (await allocatable()) === 4);
    const devices = await podResources((r) => r.allocatable());
    assert.equal(devices[RESOURCE]?.length, 4, `pod-resources GetAllocatableResources: ${JSON.stringify(devices)}`);
  });

  const probes: Record<string, ProbeResult> = {};
  test('a Pod and a virt-launcher-shaped pod are scheduled, admitted, and see their VF: PCI_RESOURCE_* and the VFIO device nodes', T, async () => {
    const ids = (await podResources((r) => r.allocatable()))[RESOURCE] ?? [];
    const inv = readInventory(loadSimulation(g.simDir).port, {});
    for (const [name, virtLauncher] of [['probe', false], ['virt-launcher-vm-a', true]] as const) {
      const outDir = join(g.node.dir, 'pod-out', name);
      const pod = probePod({ name, namespace: tenant, image: g.node.images.busybox, outDir, limits: { [RESOURCE]: '1' }, virtLauncher });
      await g.core.createNamespacedPod({ namespace: tenant, body: pod });
      const res = await probeResult(g.core, pod, outDir);
      probes[name] = res;
      const cur = await eventually(`pod ${name} Running in the API`, async () => {
        const p = await g.core.readNamespacedPod({ namespace: tenant, name });
        return p.status?.phase === 'Running' ? p : null;
      });
      assert.equal(cur.spec?.nodeName, g.node.name, 'bound by kube-scheduler');
      const addr = res.env['PCI_RESOURCE_NVIDIA_COM_L40S-12Q'];
      assert.ok(addr && ids.includes(addr), `${name}: PCI_RESOURCE_NVIDIA_COM_L40S-12Q=${addr} is one of ${ids.join(', ')}; environment: ${JSON.stringify(res.env)}`);
      const vf = inv.gpus.flatMap((x) => x.vfs).find((x) => x.address === addr);
      assert.ok(vf?.iommuGroup !== null && vf?.iommuGroup !== undefined, `VF ${addr} has an IOMMU group`);
      for (const p of ['/dev/vfio/vfio', `/dev/vfio/${vf.iommuGroup}`]) {
        assert.ok(res.devices.includes(`${p} character special file 1:3`), `${name} sees ${p} as a character device: ${res.devices.join('; ')}`);
      }
    }
    const a = probes.probe!.env['PCI_RESOURCE_NVIDIA_COM_L40S-12Q'];
    const b = probes['virt-launcher-vm-a']!.env['PCI_RESOURCE_NVIDIA_COM_L40S-12Q'];
    assert.notEqual(a, b, 'two pods, two VFs');
    const assigned = await podResources((r) => r.assignments());
    const vm = assigned[`${tenant}/virt-launcher-vm-a/compute`];
    assert.deepEqual(vm?.map((d) => [d.resource_name, d.device_ids]), [[RESOURCE, [b]]], `pod-resources List: ${JSON.stringify(assigned)}`);
    await eventually(`Node allocatable still ${RESOURCE}=4 (capacity, not free devices)`, async () => (await allocatable()) === 4);
  });

  test('in-use protection through the real pod-resources API: relabelling leaves the VFs of running pods untouched (pending); deleting the pods completes the change', T, async () => {
    const held = Object.values(probes).map((p) => p.env['PCI_RESOURCE_NVIDIA_COM_L40S-12Q']!);
    assert.equal(held.length, 2);
    await g.setLabels({ [LABEL_CONFIG]: 'l40s-24q' });
    const s = await eventually('state pending', async () => {
      const x = await status();
      return x?.state === 'pending' && x.config === 'l40s-24q' ? x : null;
    });
    assert.equal(await state(), 'pending');
    for (const addr of held) {
      assert.equal((await g.vfProfiles())[addr], 'L40S-12Q', `the VF ${addr} of a running pod keeps its type`);
      assert.ok(s.blocked.some((b) => b.device === addr && b.reason.includes(tenant)), `blocked names ${addr} and its pod: ${JSON.stringify(s.blocked)}`);
    }
    await Promise.all(['probe', 'virt-launcher-vm-a'].map((n) => deletePodAndWait(g.core, tenant, n)));
    await eventually('state success with l40s-24q', async () => {
      const x = await status();
      return x?.state === 'success' && x.config === 'l40s-24q';
    });
    assert.equal(await profileCount('L40S-24Q'), 2);
    assert.equal(await profileCount('L40S-12Q'), 0);
    await eventually('Node allocatable nvidia.com/L40S-24Q=2', async () => (await allocatable('nvidia.com/L40S-24Q')) === 2);
    await g.setLabels({ [LABEL_CONFIG]: 'l40s-12q' });
    await eventually('back to l40s-12q', async () => (await status())?.config === 'l40s-12q' && (await state()) === 'success');
    await eventually(`Node allocatable ${RESOURCE}=4`, async () => (await allocatable()) === 4);
  });

  test('kubelet restart: every resource registers again, allocatable comes back, nothing is re-applied', T, async (t) => {
    const simState = join(g.simDir, 'vmgpu-sim.json');
    const before = { sim: readFileSync(simState, 'utf8'), mtime: statSync(simState).mtimeMs, applied: await appliedEvents() };
    const resources = await podResources((r) => r.allocatable());
    for (let i = 0; i < 3; i++) {
      const r = await g.node.restartKubelet();
      const registered = await eventually('every resource in pod-resources GetAllocatableResources again', async () => {
        const now = await podResources((x) => x.allocatable()).catch(() => null);
        return now && Object.keys(resources).every((k) => now[k]?.length === resources[k]!.length) ? Date.now() : null;
      }, 30_000);
      const restored = await eventually('Node allocatable restored', async () => ((await allocatable()) === 4 ? Date.now() : null), 30_000);
      t.diagnostic(`restart ${i + 1}: kubelet start -> all resources registered ${registered - r.startedAt} ms (healthz after ${r.healthyAt - r.startedAt} ms), -> Node allocatable ${restored - r.startedAt} ms`);
    }
    assert.equal(readFileSync(simState, 'utf8'), before.sim, 'the simulated node is unchanged: nothing was re-applied');
    assert.equal(statSync(simState).mtimeMs, before.mtime, 'the simulated node was not saved again');
    assert.equal(await appliedEvents(), before.applied, 'no new VgpuConfigApplied event');
    assert.equal(await state(), 'success');
  });

  test('vmgpu validate against the real Node passes, and fails the device-plugin check when the plugins stop', T, async () => {
    const args = ['validate', '--json', '--simulate', g.simDir, '--kubeconfig', g.node.cp.kubeconfigPath, '--node-name', g.node.name, '--device-plugin-dir', g.node.devicePluginDir, '--state-dir', g.hostPathFor('/var/lib/vmgpu')];
    const ok = g.vmgpu(args);
    assert.equal(ok.code, 0, `validate failed:\n${ok.stdout}\n${ok.stderr}`);
    const passed = JSON.parse(ok.stdout) as { checks: { check: string; status: string }[] };
    for (const name of ['profiles-applied', 'device-plugins-registered', 'node-allocatable']) assert.equal(passed.checks.find((c) => c.check === name)?.status, 'passed', `${name}: ${ok.stdout}`);
    await g.agent.stop();
    await eventually(`Node allocatable ${RESOURCE}=0 once the plugins are gone`, async () => (await allocatable()) === 0);
    const bad = g.vmgpu(args);
    assert.equal(bad.code, 1, `validate should fail:\n${bad.stdout}`);
    const failed = (JSON.parse(bad.stdout) as typeof passed).checks.filter((c) => c.status === 'failed').map((c) => c.check);
    assert.ok(failed.includes('device-plugins-registered'), `failed checks: ${failed.join(', ')}`);
  });

  test('a device that turns unhealthy drops from allocatable and comes back (device plugins in this process, on the same simulated node)', T, async () => {
    const sim = loadSimulation(g.simDir);
    const inv = readInventory(sim.port, {});
    await enrichWithHostTools(inv, new SimHostTools(sim));
    const plugins = await runDevicePlugins({ inventory: inv, port: sim.port, pluginDir: g.node.devicePluginDir, logger: memoryLogger(), healthIntervalMs: 100 });
    try {
      await eventually(`Node allocatable ${RESOURCE}=4`, async () => (await allocatable()) === 4);
      const vf = inv.gpus[0]!.vfs.find((v) => v.currentProfile === 'L40S-12Q')!;
      sim.removeDevNode(vf.iommuGroup!);
      await eventually(`${RESOURCE} 3 in pod-resources and the Node once /dev/vfio/${vf.iommuGroup} is gone`, async () => {
        const ids = (await podResources((r) => r.allocatable()))[RESOURCE] ?? [];
        return ids.length === 3 && !ids.includes(vf.address) && (await allocatable()) === 3;
      });
      sim.restoreDevNode(vf.iommuGroup!);
      await eventually(`${RESOURCE} back to 4`, async () => (await allocatable()) === 4 && ((await podResources((r) => r.allocatable()))[RESOURCE] ?? []).length === 4);
    } finally {
      await plugins.stop();
    }
  });
});
