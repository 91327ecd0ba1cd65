// The DRA driver on a real Kubernetes node (test/harness/node.ts: kube-apiserver, scheduler,
// controller-manager, kubelet, containerd with CDI), run in the agent as the Helm chart renders
// it with dra.enabled, on a node labelled vmgpu.io/mode=dra and no vGPU config at all: a Pod
// with a ResourceClaim for an L40S-12Q and a Pod that asks for nvidia.com/L40S-12Q as an
// extended resource both run, each on a VF programmed at Prepare and cleared at Unprepare.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startGpuNode, type GpuNode } from '../harness/gpu-node.js';
import { draProbePod, draProbeResult, podProblem, publishedDevices, ResourceApi, type DraProbeResult } from '../harness/dra-pods.js';
import { deletePodAndWait } from '../harness/node-pods.js';
import { ANNOTATION_PERMITTED, LABEL_MODE, LABEL_WORKLOAD } from '../../src/serve/agent/desired.js';
import { eventually } from '../support/wait.js';

const T = { timeout: 240_000 };
const CLASS = 'l40s-12q.gpu.vmgpu.io';
const METADATA = '/var/run/kubernetes.io/dra-device-attributes/resourceclaims/vm-a-gpu/gpu/gpu.vmgpu.io-metadata.json';

describe('the DRA driver on a real node with no vGPU config', { timeout: 1_200_000 }, () => {
  let g: GpuNode;
  let api: ResourceApi;
  const ns = 'tenant';
  const profiles = async () => Object.entries(await g.vfProfiles()).filter(([, p]) => p !== '');

  before(async () => {
    g = await startGpuNode({
      config: 'version: v1\n', // an empty config file: no vGPU layout anywhere
      labels: { [LABEL_WORKLOAD]: 'vm-vgpu', [LABEL_MODE]: 'dra' },
      sim: ['--model', 'L40S', '--gpus', '1', '--mode', 'sriov-vgpu', '--no-vfs'],
      values: { dra: { enabled: true } },
    });
    api = new ResourceApi(g.node.cp.kubeConfig);
    await g.core.createNamespace({ body: { metadata: { name: ns } } });
    await eventually('the default ServiceAccount in the tenant namespace', () => g.core.readNamespacedServiceAccount({ namespace: ns, name: 'default' }));
  });
  after(() => g?.stop());

  test('the agent publishes the L40S: vGPU profiles of the default policy and the whole GPU, with standard attributes', T, async () => {
    const devices = await eventually('the node publishes a complete pool', () => publishedDevices(api, g.node.name));
    const names = devices.map((d) => d.name).sort();
    assert.ok(names.some((n) => n.endsWith('-l40s-12q')), `published: ${names.join(', ')}`);
    assert.ok(names.some((n) => n.endsWith('-whole')));
    const whole = devices.find((d) => d.name.endsWith('-whole'))!;
    assert.equal(whole.attributes['resource.kubernetes.io/pciBusID']?.string, '0000:18:00.0');
    assert.match(whole.attributes['resource.kubernetes.io/pcieRoot']?.string ?? '', /^pci0000:[0-9a-f]{2}$/);
    const vgpu = devices.find((d) => d.name.endsWith('-l40s-12q'))!;
    assert.equal(vgpu.attributes.profile?.string, 'L40S-12Q');
    assert.equal(vgpu.attributes.framebufferMiB?.int, 12288);
    assert.deepEqual(await profiles(), [], 'nothing is made before a claim');
  });

  test('the Node tells KubeVirt to permit the extended resources (vmgpu.io/permitted-host-devices)', T, async () => {
    const permitted = await eventually('the annotation lists nvidia.com/L40S-12Q', async () => {
      const a = (await g.core.readNode({ name: g.node.name })).metadata?.annotations?.[ANNOTATION_PERMITTED];
      const p = a ? (JSON.parse(a) as { pciHostDevices: { resourceName: string }[] }) : null;
      return p?.pciHostDevices.some((e) => e.resourceName === 'nvidia.com/L40S-12Q') ? p : null;
    });
    assert.deepEqual(permitted.pciHostDevices.find((e) => e.resourceName === 'nvidia.com/L40S-12Q'), { pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-12Q', externalResourceProvider: true });
  });

  const results: Record<string, DraProbeResult> = {};
  test('a Pod with a ResourceClaim for an L40S-12Q runs on a VF made at Prepare; the metadata file is what KubeVirt 1.9 reads', T, async () => {
    await api.createClaim({ name: 'vm-a-gpu', namespace: ns, deviceClassName: CLASS, config: { vgpuParams: { frame_rate_limiter: '0' } } });
    const outDir = join(g.node.dir, 'pod-out', 'vm-a');
    const pod = draProbePod({ name: 'virt-launcher-vm-a', namespace: ns, image: g.node.images.busybox, outDir, claims: { gpu: 'vm-a-gpu' }, files: [METADATA] });
    await g.core.createNamespacedPod({ namespace: ns, body: pod });
    const res = (results.claim = await draProbeResult(g.core, pod, outDir));
    const made = await profiles();
    assert.equal(made.length, 1, `one VF programmed: ${JSON.stringify(made)}`);
    const [vf, profile] = made[0]!;
    assert.equal(profile, 'L40S-12Q');
    const objects = res.file('gpu.vmgpu.io-metadata.json').trim().split('\n').map((l) => JSON.parse(l) as { apiVersion: string; requests: { name: string; devices: { driver: string; attributes: Record<string, { string?: string }> }[] }[] });
    assert.deepEqual(objects.map((o) => o.apiVersion), ['metadata.resource.k8s.io/v1beta1', 'metadata.resource.k8s.io/v1alpha1']);
    const kubevirt = objects.find((o) => o.apiVersion === 'metadata.resource.k8s.io/v1alpha1')!;
    const req = kubevirt.requests.find((r) => r.name === 'gpu')!;
    assert.equal(req.devices.length, 1, 'exactly one device per request, as KubeVirt requires');
    assert.equal(req.devices[0]!.attributes['resource.kubernetes.io/pciBusID']?.string, vf, 'the VF the VM gets, not its PF');
    assert.ok(res.devices.some((l) => l.startsWith('/dev/vfio/vfio character special file')), res.devices.join('; '));
    assert.ok(res.devices.some((l) => /^\/dev\/vfio\/\d+ character special file/.test(l)), `the VF's group node: ${res.devices.join('; ')}`);
  });

  test('a Pod that asks for nvidia.com/L40S-12Q as an extended resource sees PCI_RESOURCE_NVIDIA_COM_L40S-12Q and the VFIO nodes', T, async () => {
    const outDir = join(g.node.dir, 'pod-out', 'vm-b');
    const pod = draProbePod({ name: 'virt-launcher-vm-b', namespace: ns, image: g.node.images.busybox, outDir, limits: { 'nvidia.com/L40S-12Q': '1' } });
    await g.core.createNamespacedPod({ namespace: ns, body: pod });
    const res = await draProbeResult(g.core, pod, outDir).catch(async (e: Error) => assert.fail(`${e.message}\n${await podProblem(g.core, ns, 'virt-launcher-vm-b')}`));
    const made = Object.fromEntries(await profiles());
    const addr = res.env['PCI_RESOURCE_NVIDIA_COM_L40S-12Q'];
    assert.ok(addr && made[addr] === 'L40S-12Q', `PCI_RESOURCE_NVIDIA_COM_L40S-12Q=${addr} is a VF with L40S-12Q (${JSON.stringify(made)}); env ${JSON.stringify(res.env)}`);
    assert.equal(Object.keys(made).length, 2, 'two claims, two VFs of the same GPU');
    assert.ok(res.devices.some((l) => /^\/dev\/vfio\/\d+ character special file/.test(l)), res.devices.join('; '));
  });

  test('deleting the Pods unprepares: the VFs are cleared and the claims are free again', T, async () => {
    await Promise.all(['virt-launcher-vm-a', 'virt-launcher-vm-b'].map((n) => deletePodAndWait(g.core, ns, n)));
    await eventually('every VF cleared', async () => (await profiles()).length === 0);
    await eventually('the claim is no longer reserved', async () => ((await api.claim(ns, 'vm-a-gpu'))?.status?.reservedFor ?? []).length === 0);
  });
});
