// The device plugins against the REAL kubelet wire format: the fake kubelet Go
// peer (built from k8s.io/kubelet's generated code) registers them, follows
// ListAndWatch and calls Allocate/GetPreferredAllocation; the devices are a
// simulated node behind the sysfs port. Assertions are on what the Go side decoded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readInventory } from '../../src/inventory/read.js';
import { PciIds } from '../../src/inventory/pciids.js';
import { createSimulatedNode } from '../../src/simulator/index.js';
import { parseMdevTypeName, parseMdevUuid } from '../../src/sysfs/names.js';
import { checkPciAddress } from '../../src/model/pci.js';
import { runDevicePlugins, type DevicePluginManager } from '../../src/serve/deviceplugin/manager.js';
import { memoryLogger } from '../../src/serve/kube/logger.js';
import { passthroughNamer } from '../../src/serve/deviceplugin/passthrough-name.js';
import { collectResources } from '../../src/serve/deviceplugin/resources.js';
import { permittedHostDevices } from '../../src/serve/kubevirt/permitted.js';
import { PeerCallError, startFakeKubelet, type Device, type FakeKubelet, type KubeletEventOf } from '../harness/peers.js';

const PCI_IDS = PciIds.fromText(['10de  NVIDIA Corporation', '\t2236  GA102GL [A10]', ''].join('\n'));
const passthroughName = passthroughNamer(PCI_IDS);
const L40S = 'nvidia.com/L40S-12Q';
const T4 = 'nvidia.com/GRID_T4-1Q';
const A10 = 'nvidia.com/GA102GL_A10';
const ALL = [A10, T4, L40S];

interface Ctx {
  dir: string;
  kubelet: FakeKubelet;
  manager: DevicePluginManager;
  node: ReturnType<typeof createSimulatedNode>;
  logger: ReturnType<typeof memoryLogger>;
}

async function setup(opts: { rejectFirst?: number; driverVersion?: string } = {}): Promise<Ctx> {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-dpi-'));
  const node = createSimulatedNode({
    ...(opts.driverVersion ? { driverVersion: opts.driverVersion } : {}),
    gpus: [
      { model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] },
      { model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-1Q', 'T4-1Q'], numaNode: 1 },
      { model: 'A10', mode: 'passthrough', numaNode: 1 },
    ],
  });
  const kubelet = await startFakeKubelet(dir, { rejectFirst: opts.rejectFirst ?? 0 });
  const logger = memoryLogger();
  const manager = await runDevicePlugins({
    inventory: readInventory(node.port),
    port: node.port,
    pluginDir: dir,
    iommufd: true,
    logger,
    passthroughName,
    healthIntervalMs: 250,
    registerBackoffInitialMs: 100,
  });
  return { dir, kubelet, manager, node, logger };
}

async function teardown(c: Ctx): Promise<void> {
  await c.manager.stop();
  await c.kubelet.stop();
  rmSync(c.dir, { recursive: true, force: true });
}

/** The last device list the Go kubelet decoded for a resource. */
function lastDevices(k: FakeKubelet, resource: string): Device[] {
  const evs = k.events.filter((e): e is KubeletEventOf<'devices'> => e.event === 'devices' && e.resourceName === resource);
  assert.ok(evs.length > 0, `no ListAndWatch message for ${resource}`);
  return evs[evs.length - 1]!.devices;
}

async function waitRegisteredAll(k: FakeKubelet, from = 0, timeoutMs = 5000): Promise<void> {
  await Promise.all(ALL.map((r) => k.waitFor('devices', (e) => e.resourceName === r, { from, timeoutMs })));
}

/** Time from `change()` until the Go kubelet decodes a device list in which `id` has `health`. */
async function healthChange(c: Ctx, resource: string, id: string, health: 'Healthy' | 'Unhealthy', change: () => void): Promise<number> {
  const from = c.kubelet.mark();
  const t0 = performance.now();
  change();
  await c.kubelet.waitFor('devices', (e) => e.resourceName === resource && e.devices.some((d) => d.ID === id && d.health === health), { from, timeoutMs: 3000 });
  return performance.now() - t0;
}

test('registration, devices with NUMA topology and options, as the kubelet decodes them', async (t) => {
  const c = await setup({ rejectFirst: 2 });
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);

  // the first two registrations were refused and retried
  const rejected = c.kubelet.events.filter((e) => e.event === 'rejected');
  assert.equal(rejected.length, 2);
  assert.ok(c.logger.entries.some((e) => e.msg === 'registration failed; will retry'), 'a retry was logged');
  const registered = c.kubelet.events.filter((e): e is KubeletEventOf<'registered'> => e.event === 'registered');
  assert.deepEqual(registered.map((e) => e.resourceName).sort(), ALL);
  for (const r of registered) {
    assert.equal(r.version, 'v1beta1');
    assert.equal(r.endpoint, `vmgpu-${r.resourceName.replace('/', '_')}.sock`);
    assert.deepEqual(r.options, { pre_start_required: false, get_preferred_allocation_available: true });
  }

  const expected = collectResources(readInventory(c.node.port), { passthroughName }).resources;
  assert.deepEqual(expected.map((r) => r.resourceName), ALL);
  for (const r of expected) {
    const got = lastDevices(c.kubelet, r.resourceName);
    assert.deepEqual(
      got,
      r.devices.map((d) => ({ ID: d.id, health: 'Healthy', topology: d.numaNode >= 0 ? { nodes: [{ ID: d.numaNode }] } : null })),
      `devices of ${r.resourceName}`,
    );
  }
  assert.equal(lastDevices(c.kubelet, L40S).length, 4, 'two VFs on each of two L40S');
  assert.equal(lastDevices(c.kubelet, T4).length, 2);
  assert.deepEqual(lastDevices(c.kubelet, T4).map((d) => d.topology), [{ nodes: [{ ID: 1 }] }, { nodes: [{ ID: 1 }] }]);

  assert.deepEqual(await c.kubelet.options(L40S), { pre_start_required: false, get_preferred_allocation_available: true });
  await c.kubelet.prestart(L40S, [lastDevices(c.kubelet, L40S)[0]!.ID]);

  // permittedHostDevices names exactly the resources being served
  const permitted = permittedHostDevices(readInventory(c.node.port), { pciIds: PCI_IDS });
  assert.deepEqual(
    [...permitted.pciHostDevices.map((p) => p.resourceName), ...permitted.mediatedDevices.map((m) => m.resourceName)].sort(),
    ALL,
  );
  assert.deepEqual(permitted.mediatedDevices, [{ mdevNameSelector: 'GRID T4-1Q', resourceName: T4, externalResourceProvider: true }]);
});

test('Allocate: KubeVirt env vars and device specs per container, errors for unknown and unhealthy IDs', async (t) => {
  const c = await setup();
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);
  const inv = readInventory(c.node.port);
  const { resources } = collectResources(inv, { passthroughName });
  const vfs = resources.find((r) => r.resourceName === L40S)!.devices;
  const [v0, v1, v2] = vfs as [(typeof vfs)[0], (typeof vfs)[0], (typeof vfs)[0]];
  const spec = (p: string) => ({ container_path: p, host_path: p, permissions: 'rwm' });

  const res = await c.kubelet.allocate(L40S, [[v0.id, v2.id], [v1.id]]);
  assert.equal(res.container_responses.length, 2);
  assert.deepEqual(res.container_responses[0], {
    envs: { 'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': `${v0.id},${v2.id}` },
    mounts: [],
    devices: [
      spec('/dev/vfio/vfio'),
      spec(`/dev/vfio/${v0.iommuGroup}`),
      spec(`/dev/vfio/devices/${v0.vfioDev}`),
      spec(`/dev/vfio/${v2.iommuGroup}`),
      spec(`/dev/vfio/devices/${v2.vfioDev}`),
      spec('/dev/iommu'),
    ],
    annotations: {},
    cdi_devices: [],
  });
  assert.deepEqual(res.container_responses[1]!.envs, { 'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': v1.id });

  const mdevs = resources.find((r) => r.resourceName === T4)!.devices;
  const mres = await c.kubelet.allocate(T4, [[mdevs[1]!.id]]);
  assert.deepEqual(mres.container_responses[0]!.envs, { 'MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q': mdevs[1]!.id });
  assert.deepEqual(mres.container_responses[0]!.devices, [spec('/dev/vfio/vfio'), spec(`/dev/vfio/${mdevs[1]!.iommuGroup}`), spec('/dev/iommu')]);

  const gpu = resources.find((r) => r.resourceName === A10)!.devices[0]!;
  const pres = await c.kubelet.allocate(A10, [[gpu.id]]);
  assert.deepEqual(pres.container_responses[0]!.envs, { PCI_RESOURCE_NVIDIA_COM_GA102GL_A10: gpu.id });

  await assert.rejects(c.kubelet.allocate(L40S, [['0000:ff:1f.7']]), (err: unknown) => {
    assert.ok(err instanceof PeerCallError, String(err));
    assert.equal(err.code, 'InvalidArgument');
    assert.match(err.message, /nvidia.com\/L40S-12Q: device "0000:ff:1f.7" is not a device of this resource/);
    return true;
  });

  await healthChange(c, L40S, v1.id, 'Unhealthy', () => c.node.port.writeCurrentVgpuType(checkPciAddress(v1.id), 0));
  await assert.rejects(c.kubelet.allocate(L40S, [[v1.id]]), (err: unknown) => {
    assert.ok(err instanceof PeerCallError, String(err));
    assert.equal(err.code, 'FailedPrecondition');
    assert.match(err.message, new RegExp(`device ${v1.id} is Unhealthy`));
    return true;
  });
});

test('GetPreferredAllocation packs onto one NUMA node and keeps must-include devices', async (t) => {
  const c = await setup();
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);
  const devs = lastDevices(c.kubelet, L40S);
  const numa = new Map(devs.map((d) => [d.ID, d.topology?.nodes[0]?.ID ?? -1]));
  const ids = devs.map((d) => d.ID);
  const res = await c.kubelet.preferred(L40S, [{ available: ids, size: 2 }, { available: ids, mustInclude: [ids[3]!], size: 2 }]);
  assert.equal(res.container_responses.length, 2);
  for (const r of res.container_responses) {
    assert.equal(r.deviceIDs.length, 2);
    assert.equal(new Set(r.deviceIDs.map((id) => numa.get(id))).size, 1, `one NUMA node: ${r.deviceIDs}`);
  }
  assert.ok(res.container_responses[1]!.deviceIDs.includes(ids[3]!), 'must-include kept');
});

test("NVIDIA's multi-vGPU rules (vGPU 17 host driver): two vGPUs of one GPU refused with FailedPrecondition, the preferred pair spans two GPUs", async (t) => {
  const c = await setup({ driverVersion: '550.127.06' });
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);
  const ids = lastDevices(c.kubelet, L40S).map((d) => d.ID).sort();
  const gpuOf = (id: string) => id.slice(0, -1) + '0';
  const [a0, a1] = ids.filter((id) => gpuOf(id) === gpuOf(ids[0]!));
  await assert.rejects(c.kubelet.allocate(L40S, [[a0!, a1!]]), (err: unknown) => {
    assert.ok(err instanceof PeerCallError, String(err));
    assert.equal(err.code, 'FailedPrecondition');
    assert.match(err.message, /the VM's guest driver would reject these 2 vGPUs together .*both live on physical GPU .* only on different physical GPUs/);
    return true;
  });
  const res = await c.kubelet.preferred(L40S, [{ available: ids, size: 2 }, { available: ids, mustInclude: [a1!], size: 2 }]);
  for (const r of res.container_responses) {
    assert.equal(r.deviceIDs.length, 2);
    assert.equal(new Set(r.deviceIDs.map(gpuOf)).size, 2, `two GPUs: ${r.deviceIDs}`);
    const ok = await c.kubelet.allocate(L40S, [r.deviceIDs]);
    assert.deepEqual(ok.container_responses[0]!.envs, { 'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': r.deviceIDs.join(',') });
  }
  assert.ok(res.container_responses[1]!.deviceIDs.includes(a1!), 'must-include kept');
});

test('health: Unhealthy within 1 s when a VF loses its type, a /dev/vfio node or an mdev vanishes, or a GPU falls off the bus; Healthy again after', async (t) => {
  const c = await setup();
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);
  const { resources } = collectResources(readInventory(c.node.port), { passthroughName });
  const vf = resources.find((r) => r.resourceName === L40S)!.devices[0]!;
  const mdev = resources.find((r) => r.resourceName === T4)!.devices[0]!;
  const gpu = resources.find((r) => r.resourceName === A10)!.devices[0]!;
  const times: Record<string, number> = {};

  const vfAddr = checkPciAddress(vf.id);
  times['vf type cleared'] = await healthChange(c, L40S, vf.id, 'Unhealthy', () => c.node.port.writeCurrentVgpuType(vfAddr, 0));
  times['vf type restored'] = await healthChange(c, L40S, vf.id, 'Healthy', () => c.node.port.writeCurrentVgpuType(vfAddr, vf.expect.vgpuTypeId!));

  times['/dev/vfio node removed'] = await healthChange(c, T4, mdev.id, 'Unhealthy', () => c.node.removeDevNode(mdev.iommuGroup!));
  times['/dev/vfio node restored'] = await healthChange(c, T4, mdev.id, 'Healthy', () => c.node.restoreDevNode(mdev.iommuGroup!));

  times['GPU off the bus'] = await healthChange(c, A10, gpu.id, 'Unhealthy', () => c.node.removeDevice(gpu.gpu));
  times['GPU back'] = await healthChange(c, A10, gpu.id, 'Healthy', () => c.node.restoreDevice(gpu.gpu));

  // a whole L40S off the bus: every VF on it turns Unhealthy, the other card's stay Healthy
  const from = c.kubelet.mark();
  c.node.removeDevice(vf.gpu);
  const ev = await c.kubelet.waitFor('devices', (e) => e.resourceName === L40S && e.devices.some((d) => d.health === 'Unhealthy'), { from, timeoutMs: 3000 });
  const onCard = new Set(resources.find((r) => r.resourceName === L40S)!.devices.filter((d) => d.gpu === vf.gpu).map((d) => d.id));
  for (const d of ev.devices) assert.equal(d.health, onCard.has(d.ID) ? 'Unhealthy' : 'Healthy', d.ID);

  times['mdev removed'] = await healthChange(c, T4, mdev.id, 'Unhealthy', () => c.node.port.removeMdev(parseMdevUuid(mdev.id)));
  for (const [what, ms] of Object.entries(times)) assert.ok(ms < 1000, `${what}: the kubelet saw the change after ${ms.toFixed(0)} ms (limit 1000)`);
});

// Plain kubelet restarts are tested with the real kubelet (node.test.ts, bench/node.bench.ts);
// a kubelet that refuses a registration is a case only the fake one can produce.
test('kubelet restart that refuses the first registration: the plugin retries, registers within 1 s and streams its devices', async (t) => {
  const c = await setup();
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);
  const from = c.kubelet.mark();
  const t0 = performance.now();
  await c.kubelet.restart({ rejectFirst: 1 });
  await Promise.all(ALL.map((r) => c.kubelet.waitFor('registered', (e) => e.resourceName === r, { from, timeoutMs: 3000 })));
  const ms = performance.now() - t0;
  // one registration is refused first and retried after the backoff (100 ms)
  assert.ok(ms < 1000, `re-registration took ${ms.toFixed(0)} ms (limit 1000)`);
  await waitRegisteredAll(c.kubelet, from, 3000);
  const state = await c.kubelet.state();
  assert.deepEqual(state.map((p) => [p.resourceName, p.streaming]).sort(), ALL.map((r) => [r, true]));
  const id = lastDevices(c.kubelet, L40S)[0]!.ID;
  const res = await c.kubelet.allocate(L40S, [[id]]);
  assert.deepEqual(res.container_responses[0]!.envs, { 'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': id });
});

test('inventory updates change, remove and add resources without a restart', async (t) => {
  const c = await setup();
  t.after(() => teardown(c));
  await waitRegisteredAll(c.kubelet);
  const { resources } = collectResources(readInventory(c.node.port), { passthroughName });
  const vf = resources.find((r) => r.resourceName === L40S)!.devices[0]!;
  const mdevs = resources.find((r) => r.resourceName === T4)!.devices;

  // a VF is cleared: after the re-read it leaves the resource
  let from = c.kubelet.mark();
  c.node.port.writeCurrentVgpuType(checkPciAddress(vf.id), 0);
  await c.manager.update(readInventory(c.node.port));
  await c.kubelet.waitFor('devices', (e) => e.resourceName === L40S && e.devices.length === 3 && !e.devices.some((d) => d.ID === vf.id), { from, timeoutMs: 3000 });

  // every T4-1Q mdev removed: the resource's plugin stops and its stream ends
  from = c.kubelet.mark();
  for (const m of mdevs) c.node.port.removeMdev(parseMdevUuid(m.id));
  await c.manager.update(readInventory(c.node.port));
  await c.kubelet.waitFor('stream-closed', (e) => e.resourceName === T4, { from, timeoutMs: 3000 });
  assert.deepEqual(c.manager.status().map((s) => s.resourceName), [A10, L40S]);

  // an mdev created again and the VF reprogrammed: both come back
  from = c.kubelet.mark();
  c.node.port.createMdev(checkPciAddress(mdevs[0]!.parent!), parseMdevTypeName(mdevs[0]!.expect.mdevTypeDir!), parseMdevUuid(mdevs[0]!.id));
  c.node.port.writeCurrentVgpuType(checkPciAddress(vf.id), vf.expect.vgpuTypeId!);
  await c.manager.update(readInventory(c.node.port));
  const back = await c.kubelet.waitFor('devices', (e) => e.resourceName === T4, { from, timeoutMs: 3000 });
  assert.deepEqual(back.devices.map((d) => [d.ID, d.health]), [[mdevs[0]!.id, 'Healthy']]);
  await c.kubelet.waitFor('devices', (e) => e.resourceName === L40S && e.devices.length === 4, { from, timeoutMs: 3000 });
});
