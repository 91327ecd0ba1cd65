import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { readInventory } from '../../../../src/inventory/read.js';
import { PciIds } from '../../../../src/inventory/pciids.js';
import { createSimulatedNode } from '../../../../src/simulator/index.js';
import { checkPciAddress } from '../../../../src/model/pci.js';
import { runDevicePlugins } from '../../../../src/serve/deviceplugin/manager.js';
import { ResourcePlugin } from '../../../../src/serve/deviceplugin/plugin.js';
import { collectResources } from '../../../../src/serve/deviceplugin/resources.js';
import { memoryLogger } from '../../../../src/serve/kube/logger.js';
import { passthroughNamer } from '../../../../src/serve/deviceplugin/passthrough-name.js';
import { TsKubelet } from '../kubelet/ts-kubelet.js';
import { sleep, until } from '../../../support/wait.js';
import { PCI_IDS_TEXT } from '../fixtures.js';

const passthroughName = passthroughNamer(PciIds.fromText(PCI_IDS_TEXT));

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-dp-'));
  const node = createSimulatedNode({
    gpus: [
      { model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'], numaNode: 1 },
      { model: 'A10', mode: 'passthrough' },
    ],
  });
  return { dir, node, inventory: readInventory(node.port) };
}

const call = <T>(fn: (cb: (err: grpc.ServiceError | null, res: T) => void) => void) =>
  new Promise<T>((res, rej) => fn((err, r) => (err ? rej(err) : res(r))));

test('serves, registers, allocates and follows health through gRPC', async (t) => {
  const { dir, node, inventory } = setup();
  const kubelet = new TsKubelet(dir);
  await kubelet.start();
  const logger = memoryLogger();
  const registered = Promise.all(
    ['nvidia.com/L40S-12Q', 'nvidia.com/GA102GL_A10'].map((name) => kubelet.waitFor<[{ resource_name: string }]>('registered', (r) => r.resource_name === name, 3000)),
  );
  const listed = kubelet.waitFor('devices', (name: string) => name === 'nvidia.com/L40S-12Q', 3000);
  const m = await runDevicePlugins({ inventory, port: node.port, pluginDir: dir, logger, passthroughName, healthIntervalMs: 50, iommufd: true });
  t.after(async () => {
    await m.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await registered;
  assert.deepEqual(kubelet.registrations.map((r) => [r.version, r.resource_name, r.endpoint, r.options]).sort(), [
    ['v1beta1', 'nvidia.com/GA102GL_A10', 'vmgpu-nvidia.com_GA102GL_A10.sock', { pre_start_required: false, get_preferred_allocation_available: true }],
    ['v1beta1', 'nvidia.com/L40S-12Q', 'vmgpu-nvidia.com_L40S-12Q.sock', { pre_start_required: false, get_preferred_allocation_available: true }],
  ]);
  await listed;
  const devs = kubelet.devices.get('nvidia.com/L40S-12Q')!;
  assert.equal(devs.length, 2);
  for (const d of devs) {
    assert.equal(d.health, 'Healthy');
    assert.deepEqual(d.topology, { nodes: [{ ID: 1 }] });
  }
  const [vf0, vf1] = devs.map((d) => d.ID) as [string, string];

  const client = kubelet.clients.get('nvidia.com/L40S-12Q')!;
  type AllocRes = { container_responses: { envs: Record<string, string>; devices: { container_path: string }[] }[] };
  const res = await call<AllocRes>((cb) => client.Allocate({ container_requests: [{ devices_ids: [vf1] }, { devices_ids: [vf0] }] }, cb as never));
  assert.deepEqual(res.container_responses.map((c) => c.envs), [{ 'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': vf1 }, { 'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': vf0 }]);
  assert.ok(res.container_responses[0]!.devices.some((d) => d.container_path === '/dev/iommu'), '/dev/iommu in the device specs');

  const err = await call((cb) => client.Allocate({ container_requests: [{ devices_ids: ['0000:99:00.1'] }] }, cb as never)).catch((e: grpc.ServiceError) => e);
  assert.equal((err as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
  assert.match((err as grpc.ServiceError).details, /^Allocate for nvidia.com\/L40S-12Q: device "0000:99:00.1" is not a device of this resource/);

  // health: clear the VF's type -> Unhealthy, Allocate refused with FAILED_PRECONDITION
  const unhealthy = kubelet.waitFor('devices', (_n: string, d: { ID: string; health: string }[]) => d.some((x) => x.ID === vf0 && x.health === 'Unhealthy'), 1000);
  node.port.writeCurrentVgpuType(checkPciAddress(vf0), 0);
  await unhealthy;
  const err2 = await call((cb) => client.Allocate({ container_requests: [{ devices_ids: [vf0] }] }, cb as never)).catch((e: grpc.ServiceError) => e);
  assert.equal((err2 as grpc.ServiceError).code, grpc.status.FAILED_PRECONDITION);
  assert.ok(logger.entries.some((e) => e.msg === 'device unhealthy' && e.fields['device'] === vf0), 'an "device unhealthy" log line');
});

test('re-registers after a kubelet restart and after its socket is deleted; retries rejections', async (t) => {
  const { dir, node, inventory } = setup();
  const kubelet = new TsKubelet(dir);
  kubelet.rejectNext = 2;
  await kubelet.start();
  const logger = memoryLogger();
  const m = await runDevicePlugins({ inventory, port: node.port, pluginDir: dir, logger, passthroughName, registerBackoffInitialMs: 20 });
  t.after(async () => {
    await m.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await kubelet.waitFor('registered', (r: { resource_name: string }) => r.resource_name === 'nvidia.com/L40S-12Q', 3000);
  assert.ok(logger.entries.some((e) => e.msg === 'registration failed; will retry'), 'a "registration failed" log line');

  const t0 = performance.now();
  const again = kubelet.waitFor('registered', (r: { resource_name: string }) => r.resource_name === 'nvidia.com/L40S-12Q', 1000);
  await kubelet.restart();
  await again;
  const took = performance.now() - t0;
  assert.ok(took < 1000, `re-registration took ${took} ms`);
  await kubelet.waitFor('devices', (n: string) => n === 'nvidia.com/L40S-12Q', 1000);

  // only our socket removed
  const sock = m.plugin('nvidia.com/L40S-12Q')!.socketPath;
  const restarted = new Promise((resolve) => m.events.on('restarted', (e: { resource: string; reason: string }) => e.resource === 'nvidia.com/L40S-12Q' && resolve(e.reason)));
  const again2 = kubelet.waitFor('registered', (r: { resource_name: string }) => r.resource_name === 'nvidia.com/L40S-12Q' && existsSync(sock), 1000);
  unlinkSync(sock);
  assert.equal(await restarted, 'plugin socket removed');
  await again2;
  assert.ok(existsSync(sock), 'the plugin socket is back');
});

test('waits for a kubelet that is not there yet, logging once', async (t) => {
  const { dir, node, inventory } = setup();
  const logger = memoryLogger();
  const m = await runDevicePlugins({ inventory, port: node.port, pluginDir: dir, logger, passthroughName, registerBackoffInitialMs: 10, registerBackoffMaxMs: 40 });
  const kubelet = new TsKubelet(dir);
  t.after(async () => {
    await m.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await sleep(300);
  const waiting = logger.entries.filter((e) => e.msg === 'waiting for the kubelet');
  assert.equal(waiting.length, 2, 'one line per plugin, not one per attempt');
  const reg = kubelet.waitFor('registered', () => true, 1000);
  await kubelet.start();
  await reg;
});

test('update() adds and removes resources without a restart', async (t) => {
  const { dir, node, inventory } = setup();
  const kubelet = new TsKubelet(dir);
  await kubelet.start();
  const m = await runDevicePlugins({ inventory, port: node.port, pluginDir: dir, logger: memoryLogger(), passthroughName });
  t.after(async () => {
    await m.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.deepEqual(m.status().map((s) => s.resourceName), ['nvidia.com/GA102GL_A10', 'nvidia.com/L40S-12Q']);
  const a10Sock = m.plugin('nvidia.com/GA102GL_A10')!.socketPath;
  const changed = structuredClone(inventory);
  changed.gpus = changed.gpus.filter((g) => g.framework !== 'passthrough');
  for (const g of changed.gpus) g.vfs = g.vfs.slice(0, 1).map((v) => v) ;
  await m.update(changed);
  assert.deepEqual(m.status().map((s) => s.resourceName), ['nvidia.com/L40S-12Q']);
  assert.ok(!existsSync(a10Sock), 'the removed resource\'s socket is gone');
  await kubelet.waitFor('devices', (n: string, d: unknown[]) => n === 'nvidia.com/L40S-12Q' && d.length === 1, 1000);
  await m.update(inventory);
  assert.deepEqual(m.status().map((s) => s.resourceName), ['nvidia.com/GA102GL_A10', 'nvidia.com/L40S-12Q']);
});

test('Allocate never hands out a device node that is missing now, even before the next health sweep (defect 6)', async (t) => {
  const { dir, node, inventory } = setup();
  const m = await runDevicePlugins({ inventory, port: node.port, pluginDir: dir, logger: memoryLogger(), passthroughName, healthIntervalMs: 3_600_000 });
  t.after(async () => {
    await m.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const plugin = m.plugin('nvidia.com/L40S-12Q')!;
  const vf = inventory.gpus[0]!.vfs[0]!;
  const req = { container_requests: [{ devices_ids: [vf.address] }] };
  assert.ok(plugin.allocate(req).container_responses[0]!.devices.some((d) => d.host_path === `/dev/vfio/devices/${vf.vfioDev}`));
  node.removeDevNode(`vfio/devices/${vf.vfioDev}`);
  assert.throws(() => plugin.allocate(req), /Unhealthy.*\/dev\/vfio\/devices\/vfio\d+ is missing/);
});

test('a kubelet restart noticed again while the Register to the new kubelet is in flight registers once with it (defect 6)', async (t) => {
  const { dir, node, inventory } = setup();
  const kubelet = new TsKubelet(dir);
  await kubelet.start();
  const spec = collectResources(inventory, { passthroughName }).resources.find((r) => r.resourceName === 'nvidia.com/L40S-12Q')!;
  const env = { pluginDir: dir, port: node.port, iommufd: false, logger: memoryLogger(), events: new EventEmitter(), registerTimeoutMs: 5000, backoffInitialMs: 20, backoffMaxMs: 200 };
  const plugin = new ResourcePlugin(spec, env);
  t.after(async () => {
    await plugin.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await plugin.start();
  await until(() => plugin.isRegistered(), 3000);
  assert.ok(plugin.isRegistered());

  // The kubelet restarts (deleting our socket, as it does) and answers Register slowly.
  kubelet.registerDelayMs = 300;
  await kubelet.restart();
  const before = kubelet.registrations.length;
  void plugin.restart('plugin socket removed'); // noticed first: serve again, register
  await until(() => kubelet.registrations.length > before, 3000);
  assert.equal(kubelet.registrations.length, before + 1, 'the Register to the new kubelet is in flight');
  void plugin.restart('kubelet socket recreated'); // the same restart, noticed once more
  await sleep(1200);
  assert.equal(kubelet.registrations.length - before, 1, 'one registration per kubelet instance');
  assert.ok(plugin.isRegistered());
  assert.ok(existsSync(plugin.socketPath), 'the socket the kubelet dialled is still served');
});
