/**
 * The DRA driver's smaller parts: the model chosen from what the API server
 * keeps, GPUs held back or tainted, one mode per GPU in the agent, the
 * claim's view, the metadata stream, slices, KubeVirt's permitted entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveDesired, desiredFromLabels } from '../../../../src/serve/agent/desired.js';
import type { ClaimRecord } from '../../../../src/serve/dra/checkpoint.js';
import { viewClaim } from '../../../../src/serve/dra/claim.js';
import { metadataStream, MetadataWriter } from '../../../../src/serve/dra/metadata.js';
import { draGpusOf, exceptDra } from '../../../../src/serve/dra/modes.js';
import { deviceName } from '../../../../src/serve/dra/names.js';
import { nodePool, UNHEALTHY_TAINT } from '../../../../src/serve/dra/node-pool.js';
import { draPermitted, withDraPermitted } from '../../../../src/serve/dra/permitted.js';
import { resolvePolicy } from '../../../../src/serve/dra/policy.js';
import { chooseModel } from '../../../../src/serve/dra/probe.js';
import { slicesOf } from '../../../../src/serve/dra/slices.js';
import { parseConfig } from '../../../../src/spec/load.js';
import { claim, NODE, rig } from './helpers.js';

test('the model: the policy\'s choice when the server keeps its fields, else the safest it does', () => {
  const all = { partitionable: true, consumableCapacity: true, compatibilityGroups: true };
  assert.deepEqual(chooseModel('auto', all), { model: 'compatibility-groups', note: null });
  assert.equal(chooseModel('auto', { ...all, compatibilityGroups: false }).model, 'shared');
  assert.equal(chooseModel('auto', { partitionable: false, consumableCapacity: false, compatibilityGroups: false }).model, 'pinned');
  assert.equal(chooseModel('shared', all).model, 'shared');
  const fallback = chooseModel('compatibility-groups', { ...all, compatibilityGroups: false });
  assert.equal(fallback.model, 'shared');
  assert.match(fallback.note!, /needs API server features this cluster does not keep/);
});

test('a GPU is held back while it holds foreign vGPUs or claims the pool no longer has; an unusable GPU\'s devices are tainted', async () => {
  const r = rig({ gpus: [{ model: 'L40S', count: 3, mode: 'sriov-vgpu', profiles: [] }] });
  const inv = await r.inventory();
  const [a, b, c] = inv.gpus.map((g) => g.pci.address) as [string, string, string];
  inv.gpus[1]!.vfs[0]!.currentTypeId = 1;
  inv.gpus[1]!.vfs[0]!.currentProfile = 'L40S-24Q';
  inv.gpus[2]!.framework = 'unusable';
  inv.gpus[2]!.unusableReason = 'the GPU reports an Xid error';
  const stale: ClaimRecord = { uid: 'u', namespace: 'ns', name: 'old', state: 'prepared', since: '', cdi: {}, devices: [{ requests: ['gpu'], pool: NODE, device: deviceName(a, 'L40S-1Q'), shareId: null, gpu: a, profile: 'L40S-1Q', target: { kind: 'vf', address: inv.gpus[0]!.vfs[0]!.address, index: 0 }, params: null }] };
  const { pool, gpus } = nodePool({ inv, draGpus: new Set([a, b, c]), policy: resolvePolicy(null), model: 'shared', records: [stale], pcieRoot: () => null });
  assert.match(gpus[0]!.notes.join(' '), /claims allocated from devices the pool no longer has still use it \(ns\/old/);
  assert.match(gpus[1]!.notes.join(' '), /holds devices the DRA driver did not make \(VF .* holds L40S-24Q\)/);
  assert.deepEqual([...new Set([...pool.info.values()].map((i) => i.gpu))], [c], 'only the third GPU is published');
  assert.ok(pool.devices.every((d) => d.taints?.[0]?.key === UNHEALTHY_TAINT), 'and tainted');
  assert.equal(gpus[2]!.healthy, false);
});

test('one mode per GPU: the config\'s mode: dra entries, or every GPU with vmgpu.io/mode=dra; the device plugins see neither', async () => {
  const inv = await rig({ gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-24Q'] }] }).inventory();
  const file = parseConfig('version: v1\nvgpu-configs:\n  m:\n    - devices: [0]\n      vgpu-devices: {L40S-24Q: 1}\n    - devices: [1]\n      mode: dra\n', 'c.yaml');
  const [g0, g1] = inv.gpus.map((g) => g.pci.address) as [string, string];
  assert.deepEqual(draGpusOf(file.configs[0]!, inv), [g1]);
  const dra = desiredFromLabels({ 'vmgpu.io/mode': 'dra' }, { text: 'version: v1\ndra:\n  allocation: pinned\n', fileName: 'c.yaml' }, undefined);
  assert.ok(dra.ok && dra.desired.workload === 'vm-dra');
  const resolved = resolveDesired(dra.desired);
  assert.deepEqual(draGpusOf(resolved.config, inv), [g0, g1]);
  assert.equal(resolved.file.dra?.allocation, 'pinned');
  assert.match((desiredFromLabels({ 'vmgpu.io/mode': 'dynamic' }, null, undefined) as { reason: string }).reason, /neither dra nor static/);
  const held = new Map([[inv.gpus[0]!.vfs[0]!.address, 'prepared for ResourceClaim ns/a by the DRA driver']]);
  const served = exceptDra(inv, new Set([g1]), held);
  assert.deepEqual(served.gpus.map((g) => g.pci.address), [g0]);
  assert.equal(served.gpus[0]!.vfs.length, inv.gpus[0]!.vfs.length - 1, 'a prepared VF on a static GPU is not served either');
});

test('the claim\'s view: only this driver\'s results in this pool; config per request, the claim\'s over the class\'s', () => {
  const c = claim('a', [{ device: 'gpu-0000-18-00-0-l40s-12q', shareId: 's' }]);
  c.status!.allocation!.devices!.results!.push({ request: 'gpu', driver: 'other.example.com', pool: NODE, device: 'x' }, { request: 'gpu', driver: 'gpu.vmgpu.io', pool: 'other-node', device: 'y' });
  const opaque = (params: Record<string, string>, iommufd: boolean) => ({ driver: 'gpu.vmgpu.io', parameters: { apiVersion: 'gpu.vmgpu.io/v1alpha1', kind: 'VgpuConfig', vgpuParams: params, iommufd } });
  c.status!.allocation!.devices!.config = [
    { source: 'FromClass', requests: [], opaque: opaque({ frame_rate_limiter: '1' }, true) },
    { source: 'FromClaim', requests: ['gpu'], opaque: opaque({ frame_rate_limiter: '0' }, false) },
  ];
  const v = viewClaim(c, NODE);
  assert.deepEqual(v.devices, [{ request: 'gpu', pool: NODE, device: 'gpu-0000-18-00-0-l40s-12q', shareId: 's' }]);
  assert.deepEqual(v.config('gpu'), { params: 'frame_rate_limiter=0', iommufd: true });
  assert.throws(() => viewClaim({ metadata: { name: 'b', namespace: 'ns', uid: 'u' } }, NODE), /is not allocated/);
});

test('the metadata stream holds v1beta1 then v1alpha1; a template\'s claim is found under resourceclaimtemplates', () => {
  const ref = { namespace: 'ns', name: 'vm-a-gpu-x1', uid: 'u1', podClaimName: 'gpu' };
  const lines = metadataStream(ref, 'gpu', [{ pool: NODE, name: 'd', attributes: { mdevUUID: { string: 'abc' } } }]).trim().split('\n').map((l) => JSON.parse(l) as { apiVersion: string; podClaimName: string; metadata: { uid: string } });
  assert.deepEqual(lines.map((l) => l.apiVersion), ['metadata.resource.k8s.io/v1beta1', 'metadata.resource.k8s.io/v1alpha1']);
  assert.equal(lines[1]!.podClaimName, 'gpu');
  assert.equal(new MetadataWriter('/p').containerFile(ref, 'gpu'), '/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/gpu/gpu/gpu.vmgpu.io-metadata.json');
  assert.throws(() => new MetadataWriter('/p').hostFile({ ...ref, name: '../etc' }, 'gpu'), /not a Kubernetes name/);
});

test('slices: counters apart from devices, at most 64 devices each, one empty slice for an empty pool', () => {
  const devices = Array.from({ length: 130 }, (_, i) => ({ name: `d${i}`, attributes: {} }));
  const counterSets = Array.from({ length: 9 }, (_, i) => ({ name: `c${i}`, counters: { vgpus: { value: '1' } } }));
  const slices = slicesOf('n', { devices, counterSets, info: new Map() }, 7);
  assert.deepEqual(slices.map((s) => [s.metadata.name, s.spec.sharedCounters?.length ?? 0, s.spec.devices?.length ?? 0]), [
    ['n-gpu.vmgpu.io-counters-0', 8, 0],
    ['n-gpu.vmgpu.io-counters-1', 1, 0],
    ['n-gpu.vmgpu.io-devices-0', 0, 64],
    ['n-gpu.vmgpu.io-devices-1', 0, 64],
    ['n-gpu.vmgpu.io-devices-2', 0, 2],
  ]);
  assert.ok(slices.every((s) => s.spec.pool.generation === 7 && s.spec.pool.resourceSliceCount === 5));
  assert.deepEqual(slicesOf('n', { devices: [], counterSets: [], info: new Map() }, 1).map((s) => s.spec.devices), [undefined]);
});

test('KubeVirt\'s permitted entries: SR-IOV profiles by the card\'s vendor:device, mdev profiles by type name; merged into the agent\'s', async () => {
  const inv = await rig({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }, { model: 'T4', count: 1, mode: 'mdev-vgpu' }] }).inventory();
  const { pool } = nodePool({ inv, draGpus: new Set(inv.gpus.map((g) => g.pci.address)), policy: resolvePolicy({ profiles: ['L40S-12Q', 'T4-4Q'], maxInstances: null, passthrough: true, allocation: 'auto' }), model: 'shared', records: [], pcieRoot: () => null });
  const p = draPermitted(pool, inv);
  assert.deepEqual(p.pciHostDevices, [{ pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-12Q', externalResourceProvider: true }]);
  assert.deepEqual(p.mediatedDevices, [{ mdevNameSelector: 'GRID T4-4Q', resourceName: 'nvidia.com/T4-4Q', externalResourceProvider: true }]);
  const merged = JSON.parse(withDraPermitted(JSON.stringify({ pciHostDevices: [{ pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-24Q', externalResourceProvider: true }], mediatedDevices: [] }), p)!) as typeof p;
  assert.deepEqual(merged.pciHostDevices.map((e) => e.resourceName), ['nvidia.com/L40S-24Q', 'nvidia.com/L40S-12Q']);
});
