// One node, two modes: GPU 0 in static mode (a config's vGPUs, served by the device plugin),
// GPU 1 in DRA mode (vGPUs per claim), with the agent run as the Helm chart renders it with
// dra.enabled. Each side sees only its GPU; switching the DRA GPU to static mode while a claim is
// prepared on it waits for the claim (nothing is taken from its Pod), then completes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startGpuNode, type GpuNode } from '../harness/gpu-node.js';
import { draProbePod, draProbeResult, publishedDevices, ResourceApi } from '../harness/dra-pods.js';
import { deletePodAndWait, probePod, probeResult } from '../harness/node-pods.js';
import { ANNOTATION_STATUS, LABEL_CONFIG, LABEL_STATE, LABEL_WORKLOAD } from '../../src/serve/agent/desired.js';
import { eventually } from '../support/wait.js';

const T = { timeout: 240_000 };
const CONFIG = `version: v1
vgpu-configs:
  mixed:
    - devices: [0]
      vgpu-devices:
        L40S-24Q: 2
    - devices: [1]
      mode: dra
  all-static:
    - devices: all
      vgpu-devices:
        L40S-24Q: 2
`;
const GPU0 = '0000:18';
const GPU1 = '0000:2a';

describe('a GPU in static mode next to a GPU in DRA mode', { timeout: 1_200_000 }, () => {
  let g: GpuNode;
  let api: ResourceApi;
  const ns = 'mixed';
  const node = () => g.core.readNode({ name: g.node.name });
  const allocatable = async () => Number((await node()).status?.allocatable?.['nvidia.com/L40S-24Q'] ?? '0');
  const status = async () => JSON.parse((await node()).metadata?.annotations?.[ANNOTATION_STATUS] ?? 'null') as { state: string; config: string; blocked: { device: string; reason: string }[] } | null;

  before(async () => {
    g = await startGpuNode({ config: CONFIG, labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_CONFIG]: 'mixed' }, sim: ['--model', 'L40S', '--gpus', '2', '--mode', 'sriov-vgpu'], values: { dra: { enabled: true } } });
    api = new ResourceApi(g.node.cp.kubeConfig);
    await g.core.createNamespace({ body: { metadata: { name: ns } } });
    await eventually('the default ServiceAccount', () => g.core.readNamespacedServiceAccount({ namespace: ns, name: 'default' }));
  });
  after(() => g?.stop());

  test('each mode sees only its GPU: the device plugin serves GPU 0\'s vGPUs, the slices offer GPU 1', T, async () => {
    await eventually('state success', async () => (await node()).metadata?.labels?.[LABEL_STATE] === 'success');
    await eventually('nvidia.com/L40S-24Q=2 from GPU 0', async () => (await allocatable()) === 2);
    const devices = await eventually('GPU 1 published', () => publishedDevices(api, g.node.name));
    assert.ok(devices.length > 0 && devices.every((d) => d.attributes.gpu?.string?.startsWith(GPU1)), `only GPU 1: ${devices.map((d) => d.name).join(', ')}`);
  });

  test('a claim lands on GPU 1 and a device-plugin Pod on GPU 0; the DRA VF is not advertised', T, async () => {
    await api.createClaim({ name: 'dra-vm', namespace: ns, deviceClassName: 'l40s-12q.gpu.vmgpu.io' });
    const draOut = join(g.node.dir, 'pod-out', 'dra-vm');
    const dra = draProbePod({ name: 'dra-vm', namespace: ns, image: g.node.images.busybox, outDir: draOut, claims: { gpu: 'dra-vm' } });
    await g.core.createNamespacedPod({ namespace: ns, body: dra });
    await draProbeResult(g.core, dra, draOut);
    const staticOut = join(g.node.dir, 'pod-out', 'static-vm');
    const stat = probePod({ name: 'static-vm', namespace: ns, image: g.node.images.busybox, outDir: staticOut, limits: { 'nvidia.com/L40S-24Q': '1' }, virtLauncher: true });
    await g.core.createNamespacedPod({ namespace: ns, body: stat });
    const res = await probeResult(g.core, stat, staticOut);
    assert.ok(res.env['PCI_RESOURCE_NVIDIA_COM_L40S-24Q']?.startsWith(GPU0), `the static VM got a GPU 0 VF: ${JSON.stringify(res.env)}`);
    const vfs = await g.vfProfiles();
    const onGpu1 = Object.entries(vfs).filter(([a, p]) => a.startsWith(GPU1) && p);
    assert.deepEqual(onGpu1.map(([, p]) => p), ['L40S-12Q'], `GPU 1 holds the claim's vGPU: ${JSON.stringify(vfs)}`);
    await eventually('allocatable still 2: the DRA VF is not a device-plugin device', async () => (await allocatable()) === 2);
  });

  test('switching GPU 1 to static mode waits for the prepared claim, then completes', T, async () => {
    await g.setLabels({ [LABEL_CONFIG]: 'all-static' });
    const s = await eventually('state pending on the claim', async () => {
      const x = await status();
      return x?.state === 'pending' && x.config === 'all-static' ? x : null;
    });
    assert.ok(s.blocked.some((b) => /prepared for ResourceClaim mixed\/dra-vm by the DRA driver/.test(b.reason)), JSON.stringify(s.blocked));
    assert.deepEqual(Object.entries(await g.vfProfiles()).filter(([a, p]) => a.startsWith(GPU1) && p).map(([, p]) => p), ['L40S-12Q'], 'the claim\'s VF is untouched');
    await eventually('GPU 1 no longer offered', async () => (await publishedDevices(api, g.node.name))?.length === 0);
    await deletePodAndWait(g.core, ns, 'dra-vm');
    await eventually('state success with all-static', async () => (await status())?.state === 'success' && (await status())?.config === 'all-static', 120_000);
    await eventually('nvidia.com/L40S-24Q=4', async () => (await allocatable()) === 4);
  });
});
