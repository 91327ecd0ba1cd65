/**
 * NVIDIA's multi-vGPU rules in Allocate and GetPreferredAllocation (issue 15,
 * item 4), on hand-made inventories: four L40S with two VFs each, T4s with
 * mdevs, A10s for passthrough; the host driver version and NVLink islands vary.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { enrichWithHostTools, readInventory } from '../../../../src/inventory/read.js';
import { PciIds } from '../../../../src/inventory/pciids.js';
import type { Gpu, Inventory } from '../../../../src/inventory/types.js';
import { AllocationError } from '../../../../src/serve/deviceplugin/allocate.js';
import { passthroughNamer } from '../../../../src/serve/deviceplugin/passthrough-name.js';
import { ResourcePlugin } from '../../../../src/serve/deviceplugin/plugin.js';
import { collectResources } from '../../../../src/serve/deviceplugin/resources.js';
import { memoryLogger } from '../../../../src/serve/kube/logger.js';
import { createSimulatedNode, SimHostTools } from '../../../../src/simulator/index.js';
import { runDevicePlugins } from '../../../../src/serve/deviceplugin/manager.js';
import { TsKubelet } from '../kubelet/ts-kubelet.js';
import { gpu, inventory, mdevParent, PCI_IDS_TEXT, vf, vgpuType } from '../fixtures.js';

const passthroughName = passthroughNamer(PciIds.fromText(PCI_IDS_TEXT));

/** `count` L40S GPUs (bus 0x10, 0x20, ...) each with two VFs of `profile`; `islands` sets nvlinkIsland per GPU index. */
function l40sNode(driverVersion: string | null, profile = 'L40S-24Q', count = 4, islands: (string | null)[] = []): Inventory {
  const type = vgpuType(1069, profile);
  const gpus: Gpu[] = [];
  for (let i = 0; i < count; i++) {
    const bus = (0x10 * (i + 1)).toString(16);
    const g = gpu(`0000:${bus}:00.0`, {
      index: i,
      catalog: [type],
      vfs: [vf(`0000:${bus}:00.4`, 0, 1069, profile, { iommuGroup: 100 + 2 * i }), vf(`0000:${bus}:00.5`, 1, 1069, profile, { iommuGroup: 101 + 2 * i })],
    });
    if (islands[i] !== undefined) g.nvlinkIsland = islands[i]!;
    gpus.push(g);
  }
  const inv = inventory(gpus);
  inv.node.nvidiaDriverVersion = driverVersion;
  return inv;
}

function pluginFor(inv: Inventory, resource: string): ResourcePlugin {
  const spec = collectResources(inv, { passthroughName }).resources.find((r) => r.resourceName === resource);
  assert.ok(spec, `resource ${resource}`);
  const env = { pluginDir: '/nonexistent', port: createSimulatedNode({ gpus: [] }).port, iommufd: false, logger: memoryLogger(), events: new EventEmitter(), registerTimeoutMs: 1000, backoffInitialMs: 10, backoffMaxMs: 10 };
  const plugin = new ResourcePlugin(spec, env);
  // Health is not what these tests are about: every device counts as healthy.
  (plugin as unknown as { checks: Map<string, () => null> }).checks = new Map(spec.devices.map((d) => [d.id, () => null]));
  return plugin;
}

const allocate = (p: ResourcePlugin, ids: string[]) => p.allocate({ container_requests: [{ devices_ids: ids }] });
const preferred = (p: ResourcePlugin, available: string[], must: string[], size: number) =>
  p.preferred({ container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: must, allocation_size: size }] }).container_responses[0]!.deviceIDs;
const refused = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof AllocationError && e.reason === 'multi-vgpu' && re.test(e.message));
const ALL = ['0000:10:00.4', '0000:10:00.5', '0000:20:00.4', '0000:20:00.5', '0000:30:00.4', '0000:30:00.5', '0000:40:00.4', '0000:40:00.5'];

test('vGPU 16 host driver: two vGPUs of one physical GPU in one VM are refused, on two GPUs allowed', () => {
  const p = pluginFor(l40sNode('535.230.02'), 'nvidia.com/L40S-24Q');
  refused(() => allocate(p, ['0000:10:00.4', '0000:10:00.5']), /^Allocate for nvidia.com\/L40S-24Q: the VM's guest driver would reject these 2 vGPUs together .*both live on physical GPU 0000:10:00.0; with the host driver \(535.230.02, vGPU 15 to 17\) NVIDIA supports a VM's vGPUs only on different physical GPUs/);
  assert.deepEqual(allocate(p, ['0000:10:00.4', '0000:20:00.4']).container_responses[0]!.envs, { 'PCI_RESOURCE_NVIDIA_COM_L40S-24Q': '0000:10:00.4,0000:20:00.4' });
});

test('vGPU 18 host driver: two vGPUs of one physical GPU in one VM are allowed', () => {
  const p = pluginFor(l40sNode('570.133.10'), 'nvidia.com/L40S-24Q');
  assert.equal(allocate(p, ['0000:10:00.4', '0000:10:00.5']).container_responses.length, 1);
});

test('B-series vGPUs are never combined in one VM; one is fine', () => {
  const p = pluginFor(l40sNode('580.65.05', 'L40S-2B'), 'nvidia.com/L40S-2B');
  refused(() => allocate(p, ['0000:10:00.4', '0000:20:00.4']), /L40S-2B is a B-series vGPU; .* only for Q- and C-series profiles/);
  assert.equal(allocate(p, ['0000:10:00.4']).container_responses.length, 1);
  assert.deepEqual(preferred(p, ALL, [], 2), [], 'no allowed pair: only the must-include devices');
});

test('an unknown host driver version refuses several vGPUs per VM (fail closed) and allows one', () => {
  const p = pluginFor(l40sNode(null), 'nvidia.com/L40S-24Q');
  refused(() => allocate(p, ['0000:10:00.4', '0000:20:00.4']), /host driver version is unknown/);
  assert.equal(allocate(p, ['0000:10:00.4']).container_responses.length, 1);
});

test('vGPU 13 host driver: only whole-GPU profiles may be combined (T4-16Q yes, T4-8Q no)', () => {
  const t4 = (bus: string, profile: string, uuidTail: string): Gpu =>
    gpu(`0000:${bus}:00.0`, {
      framework: 'mdev-vgpu',
      model: { name: 'T4', profileBoard: 'T4', vgpuFramework: 'mdev' },
      pciOver: { deviceId: '1eb8', name: 'TU104GL [Tesla T4]' },
      mdevParents: [mdevParent(`0000:${bus}:00.0`, [{ uuid: `6f3a1e2c-0000-4000-8000-00000000000${uuidTail}`, typeDir: 'nvidia-230', typeName: `GRID ${profile}`, group: Number(uuidTail) }], [{ dir: 'nvidia-230', id: 230, name: `GRID ${profile}`, profile }])],
    });
  for (const [profile, ok] of [['T4-16Q', true], ['T4-8Q', false]] as const) {
    const inv = inventory([t4('3b', profile, '1'), t4('5b', profile, '2')]);
    inv.node.nvidiaDriverVersion = '470.256.02';
    const p = pluginFor(inv, `nvidia.com/GRID_${profile}`);
    const ids = ['6f3a1e2c-0000-4000-8000-000000000001', '6f3a1e2c-0000-4000-8000-000000000002'];
    if (ok) assert.equal(allocate(p, ids).container_responses.length, 1);
    else refused(() => allocate(p, ids), /only for profiles that take a whole GPU's framebuffer, and T4-8Q does not/);
  }
});

test('passthrough GPUs are not vGPUs: any number per VM, whatever the driver', () => {
  const a10 = (bus: string, group: number) => gpu(`0000:${bus}:00.0`, { framework: 'passthrough', pciOver: { deviceId: '2236', driver: 'vfio-pci', iommuGroup: group, name: 'GA102GL [A10]' } });
  const inv = inventory([a10('5e', 50), a10('6e', 60)]);
  inv.node.nvidiaDriverVersion = null;
  const p = pluginFor(inv, 'nvidia.com/GA102GL_A10');
  assert.equal(allocate(p, ['0000:5e:00.0', '0000:6e:00.0']).container_responses.length, 1);
});

test('preferred (vGPU 16): one vGPU per physical GPU, never two of one GPU', () => {
  const p = pluginFor(l40sNode('535.230.02'), 'nvidia.com/L40S-24Q');
  assert.deepEqual(preferred(p, ALL, [], 2), ['0000:10:00.4', '0000:20:00.4']);
  assert.deepEqual(preferred(p, ALL, ['0000:10:00.5'], 2), ['0000:10:00.5', '0000:20:00.4']);
  // only vGPUs of one GPU left: no allowed pair, so only the must-include device
  assert.deepEqual(preferred(p, ['0000:10:00.4', '0000:10:00.5'], ['0000:10:00.4'], 2), ['0000:10:00.4']);
  // more vGPUs than GPUs: as many as are allowed
  assert.deepEqual(preferred(p, ALL, [], 5).length, 4);
});

test('preferred (vGPU 18): spread over GPUs first, pack onto one GPU only when that is all there is', () => {
  const p = pluginFor(l40sNode('570.133.10'), 'nvidia.com/L40S-24Q');
  assert.deepEqual(preferred(p, ALL, [], 2), ['0000:10:00.4', '0000:20:00.4']);
  assert.deepEqual(preferred(p, ['0000:10:00.4', '0000:10:00.5'], [], 2), ['0000:10:00.4', '0000:10:00.5']);
});

test('preferred: GPUs of one NVLink island for a multi-GPU VM, the must-include device\'s island first', () => {
  // islands {10,20} and {30,40}, all on one NUMA node
  const islands = ['0000:10:00.0', '0000:10:00.0', '0000:30:00.0', '0000:30:00.0'];
  const p = pluginFor(l40sNode('570.133.10', 'L40S-24Q', 4, islands), 'nvidia.com/L40S-24Q');
  assert.deepEqual(preferred(p, ALL, ['0000:30:00.4'], 2), ['0000:30:00.4', '0000:40:00.4']);
  assert.deepEqual(preferred(p, ALL.filter((id) => !id.startsWith('0000:10')), [], 2), ['0000:30:00.4', '0000:40:00.4'], 'the island that can hold the whole request');
  // unknown topology: no preference, no error
  const plain = pluginFor(l40sNode('570.133.10'), 'nvidia.com/L40S-24Q');
  assert.deepEqual(preferred(plain, ALL, ['0000:30:00.4'], 2), ['0000:30:00.4', '0000:10:00.4']);
});

test('preferred never returns a set Allocate refuses (every driver, size, must-include)', () => {
  for (const driver of [null, '470.256.02', '535.230.02', '570.133.10']) {
    for (const profile of ['L40S-24Q', 'L40S-2B', 'L40S-48C']) {
      const p = pluginFor(l40sNode(driver, profile), `nvidia.com/${profile}`);
      for (let size = 1; size <= 8; size++) {
        for (const must of [[], ['0000:20:00.5'], ['0000:10:00.4', '0000:10:00.5']]) {
          const got = preferred(p, ALL, must, size);
          if (got.length === 0) continue;
          const mustRefused = must.length > 0 && (() => { try { allocate(p, must); return false; } catch { return true; } })();
          // The kubelet's must-include devices stay in the answer; when they alone are refused, nothing is added.
          if (mustRefused) {
            assert.deepEqual(got, must);
            continue;
          }
          assert.doesNotThrow(() => allocate(p, got), `${driver} ${profile} size ${size} must ${must.join(',')} -> ${got.join(',')}`);
        }
      }
    }
  }
});

test('through gRPC on a simulated node (vGPU 17 driver): the refusal is FAILED_PRECONDITION with the reason; the preferred pair is on two GPUs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-multi-'));
  const node = createSimulatedNode({ driverVersion: '550.127.06', gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu', profiles: ['L40S-24Q', 'L40S-24Q'] }] });
  const inventory = readInventory(node.port);
  await enrichWithHostTools(inventory, new SimHostTools(node));
  const kubelet = new TsKubelet(dir);
  await kubelet.start();
  const registered = kubelet.waitFor('registered', (r: { resource_name: string }) => r.resource_name === 'nvidia.com/L40S-24Q', 3000);
  const m = await runDevicePlugins({ inventory, port: node.port, pluginDir: dir, logger: memoryLogger(), passthroughName, healthIntervalMs: 50 });
  t.after(async () => {
    await m.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await registered;
  const client = kubelet.clients.get('nvidia.com/L40S-24Q')! as unknown as Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;
  const call = (method: string, req: unknown) => new Promise<unknown>((res, rej) => client[method]!.call(client, req, (err, r) => (err ? rej(err) : res(r))));
  const [a0, a1, b0] = inventory.gpus.flatMap((g) => g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => v.address));
  const err = (await call('Allocate', { container_requests: [{ devices_ids: [a0, a1] }] }).catch((e: unknown) => e)) as grpc.ServiceError;
  assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
  assert.match(err.details, /^Allocate for nvidia.com\/L40S-24Q: the VM's guest driver would reject these 2 vGPUs together .* only on different physical GPUs/);
  const pref = (await call('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: [a0, a1, b0], must_include_deviceIDs: [], allocation_size: 2 }] })) as { container_responses: { deviceIDs: string[] }[] };
  assert.deepEqual(pref.container_responses[0]!.deviceIDs, [a0, b0]);
  await call('Allocate', { container_requests: [{ devices_ids: [a0, b0] }] });
});

test('preferred: a one-vGPU VM takes a GPU outside the NVLink islands, keeping them whole for multi-GPU VMs', () => {
  const islands = ['0000:10:00.0', '0000:10:00.0', null, null];
  const p = pluginFor(l40sNode('570.133.10', 'L40S-24Q', 4, islands), 'nvidia.com/L40S-24Q');
  assert.deepEqual(preferred(p, ALL, [], 1), ['0000:30:00.4']);
  assert.deepEqual(preferred(p, ALL, [], 2), ['0000:10:00.4', '0000:20:00.4']);
  // only island GPUs left: one of them
  assert.deepEqual(preferred(p, ALL.slice(0, 4), [], 1), ['0000:10:00.4']);
});
