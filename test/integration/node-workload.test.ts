// The workload label on a real Kubernetes node with the chart's rendered DaemonSet (issue 15,
// item 3): relabelling a vm-vgpu node to `container` while a pod holds a vGPU keeps the agent
// admitted on the node (the kubelet admits a pod of the chart's template: its affinity matches
// `container` + vmgpu.io/managed=true) until the GPUs are back on the host driver; then the
// agent removes the mark and the kubelet refuses that pod (NodeAffinity), as the DaemonSet
// controller would take it off the node. Harness: test/harness/gpu-node.ts (node.ts, chart-agent.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { V1DaemonSet, V1Pod } from '@kubernetes/client-node';
import { startGpuNode, NAMESPACE, type GpuNode } from '../harness/gpu-node.js';
import { standInPod } from '../harness/chart-agent.js';
import { deletePodAndWait, probePod, probeResult } from '../harness/node-pods.js';
import { ANNOTATION_STATUS, LABEL_CONFIG, LABEL_WORKLOAD } from '../../src/serve/agent/desired.js';
import { LABEL_MANAGED } from '../../src/serve/agent/managed.js';
import { eventually } from '../support/wait.js';
import { L40S_12Q_24Q } from './agent-helpers.js';

const RESOURCE = 'nvidia.com/L40S-12Q';
const T = { timeout: 180_000 };

describe('the workload label on a real node, with the chart\'s DaemonSet', { timeout: 900_000 }, () => {
  let g: GpuNode;
  const tenant = 'tenant';
  const node = () => g.core.readNode({ name: g.node.name });
  const labels = async () => (await node()).metadata?.labels ?? {};
  const allocatable = async () => Number((await node()).status?.allocatable?.[RESOURCE] ?? '0');
  const status = async () => JSON.parse((await node()).metadata?.annotations?.[ANNOTATION_STATUS] ?? 'null') as { state: string; config: string; blocked: { device: string }[] } | null;
  const waitStatus = (what: string, pred: (s: NonNullable<Awaited<ReturnType<typeof status>>>) => boolean) =>
    eventually(what, async () => {
      const s = await status();
      return s && pred(s) ? s : null;
    });

  /** A pod of the chart's DaemonSet template bound to the node, as the DaemonSet controller makes one: what the kubelet does with it. */
  let tries = 0;
  const admitTemplatePod = async (): Promise<V1Pod> => {
    const ds = g.rendered.find((x) => x.kind === 'DaemonSet') as unknown as V1DaemonSet;
    const pod = standInPod(ds, g.node.name, g.node.images.busybox);
    pod.metadata!.name = `template-pod-${++tries}`;
    await g.core.createNamespacedPod({ namespace: NAMESPACE, body: pod });
    const out = await eventually(`the kubelet decides on ${pod.metadata!.name}`, async () => {
      const p = await g.core.readNamespacedPod({ namespace: NAMESPACE, name: pod.metadata!.name! });
      return p.status?.phase === 'Running' || p.status?.phase === 'Failed' ? p : null;
    });
    await deletePodAndWait(g.core, NAMESPACE, pod.metadata!.name!);
    return out;
  };

  before(async () => {
    g = await startGpuNode({ config: L40S_12Q_24Q, labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'l40s-12q' } });
    await g.core.createNamespace({ body: { metadata: { name: tenant } } });
    await eventually('the default ServiceAccount in the tenant namespace', () => g.core.readNamespacedServiceAccount({ namespace: tenant, name: 'default' }));
  });
  after(() => g?.stop());

  test('vm-vgpu: the agent applies the config and marks the node', T, async () => {
    await waitStatus('l40s-12q applied', (s) => s.state === 'success' && s.config === 'l40s-12q');
    assert.equal((await labels())[LABEL_MANAGED], 'true');
    await eventually(`Node allocatable ${RESOURCE}=4`, async () => (await allocatable()) === 4);
  });

  test('relabelled to container with a vGPU in use: the agent stays admitted, advertises nothing, and the vGPU waits; once the pod is gone the GPU is back, the mark goes and the chart\'s pod is refused', T, async () => {
    const outDir = join(g.node.dir, 'pod-out', 'vm');
    const pod = probePod({ name: 'virt-launcher-vm', namespace: tenant, image: g.node.images.busybox, outDir, limits: { [RESOURCE]: '1' }, virtLauncher: true });
    await g.core.createNamespacedPod({ namespace: tenant, body: pod });
    const held = (await probeResult(g.core, pod, outDir)).env['PCI_RESOURCE_NVIDIA_COM_L40S-12Q'];
    assert.ok(held, 'the VM pod got a vGPU');

    await g.setLabels({ [LABEL_WORKLOAD]: 'container' });
    const s = await waitStatus('pending on the held vGPU', (x) => x.state === 'pending' && x.config === 'container');
    assert.ok(s.blocked.some((b) => b.device === held), JSON.stringify(s.blocked));
    assert.equal((await g.vfProfiles())[held], 'L40S-12Q', 'the VM keeps its vGPU');
    assert.equal((await labels())[LABEL_MANAGED], 'true');
    await eventually(`Node allocatable ${RESOURCE}=0: nothing offered on a container node`, async () => (await allocatable()) === 0);
    const kept = await admitTemplatePod();
    assert.equal(kept.status?.phase, 'Running', `the chart's pod is admitted on the relabelled node while its GPUs are not back: ${JSON.stringify(kept.status)}`);

    await deletePodAndWait(g.core, tenant, 'virt-launcher-vm');
    await waitStatus('success: every GPU back on the host driver', (x) => x.state === 'success' && x.config === 'container');
    assert.deepEqual(await g.vfProfiles(), {}, 'no vGPU and no VF left');
    await eventually('the mark is removed', async () => !(LABEL_MANAGED in (await labels())));
    const refused = await admitTemplatePod();
    assert.equal(refused.status?.phase, 'Failed');
    assert.equal(refused.status?.reason, 'NodeAffinity', `the kubelet refuses the chart's pod once the GPUs are back: ${JSON.stringify(refused.status)}`);
  });
});
