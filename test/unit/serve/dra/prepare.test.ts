/**
 * Prepare and Unprepare on a simulated node: what they make and remove, that
 * they are idempotent, that a crash between any two writes converges on the
 * next call (no leaked and no duplicate vGPU), that a reboot is recovered,
 * that a device a VM holds is never touched, and that what the GPU's capacity
 * forbids is refused with a message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSimulatedNode } from '../../../../src/simulator/index.js';
import { claim, deviceName, msg, rig } from './helpers.js';

const L40S = { gpus: [{ model: 'L40S', count: 2, mode: 'sriov-vgpu' as const, vfsEnabled: false }] };
const GPU0 = '0000:18:00.0';
const dev12q = deviceName(GPU0, 'L40S-12Q');

test('Prepare enables the VFs, programs a free VF with the profile and the claim\'s vgpu_params, and returns CDI IDs; Unprepare clears it', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }], { config: { vgpuParams: { frame_rate_limiter: '0' } }, extended: true }));
  const p = r.preparer();
  const res = await p.prepare(msg('a'));
  assert.equal(res.error, '');
  assert.deepEqual(res.devices.map((d) => [d.device_name, d.share_id]), [[dev12q, 's1']]);
  assert.deepEqual(res.devices[0]!.cdi_device_ids, ['gpu.vmgpu.io/vgpu=uid-a-gpu-0000-18-00-0-l40s-12q-0', 'gpu.vmgpu.io/vgpu=uid-a-req-gpu']);
  const inv = await r.inventory();
  const vf = inv.gpus[0]!.vfs[0]!;
  assert.equal(vf.currentProfile, 'L40S-12Q');
  assert.equal(vf.vgpuParams, 'frame_rate_limiter=0');
  const spec = JSON.parse(fs.readFileSync(path.join(r.dir, 'cdi', 'gpu.vmgpu.io-vgpu_uid-a.json'), 'utf8')) as { devices: { name: string; containerEdits: { env?: string[]; deviceNodes?: { path: string }[] } }[] };
  assert.deepEqual(spec.devices[0]!.containerEdits.deviceNodes!.map((n) => n.path), ['/dev/vfio/vfio', `/dev/vfio/${vf.iommuGroup}`, `/dev/vfio/devices/${vf.vfioDev}`]);
  assert.deepEqual(spec.devices[1]!.containerEdits.env, [`PCI_RESOURCE_NVIDIA_COM_L40S-12Q=${vf.address}`], 'the env var KubeVirt reads, named after the class\'s extended resource');
  assert.equal(await p.unprepare(msg('a')), '');
  assert.deepEqual(await r.vfs(), {});
  assert.deepEqual(r.checkpoint().all(), []);
  assert.equal(fs.existsSync(path.join(r.dir, 'cdi', 'gpu.vmgpu.io-vgpu_uid-a.json')), false);
});

test('Prepare and Unprepare are idempotent: a repeated call changes nothing and answers the same', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  const p = r.preparer();
  const first = await p.prepare(msg('a'));
  const writes = r.backend.writes;
  assert.deepEqual(await p.prepare(msg('a')), first);
  assert.deepEqual(await r.preparer().prepare(msg('a')), first, 'also from a restarted driver');
  assert.equal(r.backend.writes, writes, 'no write for a claim already prepared');
  assert.equal(await p.unprepare(msg('a')), '');
  const after = r.backend.writes;
  assert.equal(await p.unprepare(msg('a')), '');
  assert.equal(r.backend.writes, after);
});

test('two claims of one profile share the GPU on two VFs; removing one keeps the other', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  r.claims.set('b', claim('b', [{ device: dev12q, shareId: 's2' }]));
  const p = r.preparer();
  assert.equal((await p.prepare(msg('a'))).error, '');
  assert.equal((await p.prepare(msg('b'))).error, '');
  assert.deepEqual(Object.values(await r.vfs()), ['L40S-12Q', 'L40S-12Q']);
  const b = r.checkpoint().get('uid-b')!.devices[0]!.target;
  assert.equal(await p.unprepare(msg('a')), '');
  assert.deepEqual(Object.keys(await r.vfs()), [b.kind === 'vf' ? b.address : 'not a VF']);
});

test('what the GPU cannot take is refused with the reason, and nothing is written', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  r.claims.set('b', claim('b', [{ device: deviceName(GPU0, 'L40S-24Q'), shareId: 's2' }]));
  r.claims.set('c', claim('c', [{ device: deviceName(GPU0, null) }]));
  const p = r.preparer();
  await p.prepare(msg('a'));
  const writes = r.backend.writes;
  const mixed = await p.prepare(msg('b'));
  assert.match(mixed.error, /L40S-12Q and L40S-24Q .* needs mixed-size vGPU mode/);
  const whole = await p.prepare(msg('c'));
  assert.match(whole.error, /cannot be passed through whole and hold vGPUs at once/);
  assert.equal(r.backend.writes, writes);
  assert.deepEqual(r.checkpoint().all().map((c) => c.name), ['a'], 'refused claims leave no record');
});

/** Each kind of device, on a node that needs the most steps to make it. */
const SCENARIOS = [
  { what: 'SR-IOV vGPU with vgpu_params', spec: { gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' as const, vfsEnabled: true }] }, device: dev12q, config: { vgpuParams: { frame_rate_limiter: '0' } } },
  { what: 'mdev vGPU (T4)', spec: { gpus: [{ model: 'T4', count: 1, mode: 'mdev-vgpu' as const }] }, device: '', profile: 'T4-4Q', config: { vgpuParams: { frame_rate_limiter: '0' } } },
  { what: 'mdev vGPU on VFs (A100 40GB)', spec: { gpus: [{ model: 'A100-40GB', count: 1, mode: 'mdev-vgpu' as const }] }, device: '', profile: 'A100-10C' },
  { what: 'the whole GPU', spec: { gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' as const, vfsEnabled: true }] }, device: deviceName(GPU0, null) },
];

type Scenario = (typeof SCENARIOS)[number];

async function scenarioRig(s: Scenario): Promise<ReturnType<typeof rig>> {
  const r = rig(s.spec);
  const gpu = (await r.inventory()).gpus[0]!.pci.address;
  const device = s.device || deviceName(gpu, s.profile!);
  r.claims.set('a', claim('a', [{ device, shareId: s.device.endsWith('whole') ? undefined : 's1' }], s.config ? { config: s.config } : {}));
  return r;
}

/** Everything the node holds that a claim could have made: typed VFs, mdevs, GPUs off their host driver. */
async function made(r: ReturnType<typeof rig>): Promise<string[]> {
  const inv = await r.inventory();
  return inv.gpus.flatMap((g) => [
    ...g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => `${v.address}=${v.currentProfile}:${v.vgpuParams ?? ''}`),
    ...g.mdevParents.flatMap((p) => p.instances.map((i) => `${i.uuid}=${i.typeName}:${i.vgpuParams ?? ''}`)),
    ...(g.framework === 'passthrough' ? [`${g.pci.address}=${g.pci.driver}`] : []),
  ]);
}

for (const s of SCENARIOS) {
  test(`${s.what}: a crash at any write of Prepare or Unprepare, then a retry from a restarted driver, converges with no leaked or duplicate device`, async () => {
    const clean = await scenarioRig(s);
    assert.equal((await clean.preparer().prepare(msg('a'))).error, '');
    const prepared = await made(clean);
    const prepareWrites = clean.backend.writes;
    assert.equal(await clean.preparer().unprepare(msg('a')), '');
    const unprepareWrites = clean.backend.writes - prepareWrites;
    assert.equal(prepared.length, 1, `one device: ${prepared.join(', ')}`);
    for (let n = 1; n <= prepareWrites; n++) {
      const r = await scenarioRig(s);
      r.backend.crashAt(n);
      assert.match((await r.preparer().prepare(msg('a'))).error, /simulated crash/, `Prepare write ${n} crashed`);
      assert.equal(r.checkpoint().get('uid-a')?.state, 'preparing', 'the record of what may exist was written first');
      assert.equal((await r.preparer().prepare(msg('a'))).error, '', `retry after a crash at Prepare write ${n}`);
      assert.deepEqual(await made(r), prepared, `after a crash at Prepare write ${n}`);
    }
    for (let n = 1; n <= unprepareWrites; n++) {
      const r = await scenarioRig(s);
      await r.preparer().prepare(msg('a'));
      r.backend.crashAt(n);
      assert.match(await r.preparer().unprepare(msg('a')), /simulated crash/, `Unprepare write ${n} crashed`);
      assert.equal(r.checkpoint().get('uid-a')?.state, 'unpreparing');
      assert.equal(await r.preparer().unprepare(msg('a')), '', `retry after a crash at Unprepare write ${n}`);
      assert.deepEqual(await made(r), [], `after a crash at Unprepare write ${n}`);
      assert.deepEqual(r.checkpoint().all(), []);
    }
  });
}

test('after a reboot (VFs gone) a re-Prepare remakes the vGPU on the same VF; a claim prepared before is not duplicated', async () => {
  const spec = { gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' as const, vfsEnabled: false }] };
  const before = rig(spec);
  before.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  before.claims.set('b', claim('b', [{ device: dev12q, shareId: 's2' }]));
  await before.preparer().prepare(msg('a'));
  await before.preparer().prepare(msg('b'));
  const addrA = (before.checkpoint().get('uid-a')!.devices[0]!.target as { address: string }).address;
  // The node boots: a fresh simulated node of the same hardware, the checkpoint and claims survive.
  const after = rig(spec, createSimulatedNode(spec), before.dir);
  for (const [k, v] of before.claims) after.claims.set(k, v);
  assert.deepEqual(await after.vfs(), {}, 'nothing survives the reboot');
  assert.equal((await after.preparer().prepare(msg('b'))).error, '');
  assert.equal((await after.preparer().prepare(msg('a'))).error, '');
  const vfs = await after.vfs();
  assert.equal(Object.keys(vfs).length, 2, JSON.stringify(vfs));
  assert.equal(vfs[addrA], 'L40S-12Q', 'claim a is back on its VF');
});

test('a VF a VM holds is never touched: Unprepare waits with the reason, and succeeds once the VM lets go', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  const p = r.preparer();
  await p.prepare(msg('a'));
  const vf = Object.keys(await r.vfs())[0]!;
  r.sim.hold(vf);
  const writes = r.backend.writes;
  assert.match(await p.unprepare(msg('a')), /waits: .*in use: process \d+ \(qemu-system-x86_64\)/);
  assert.equal(r.backend.writes, writes, 'no write while the VM holds the VF');
  assert.equal((await r.vfs())[vf], 'L40S-12Q');
  r.sim.release(vf);
  assert.equal(await p.unprepare(msg('a')), '');
  assert.deepEqual(await r.vfs(), {});
});

test('a GPU with vGPUs the driver did not make takes no claim; its foreign vGPU is left alone when a claim of ours is removed', async () => {
  const r = rig({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu', vfsEnabled: true }] });
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  const p = r.preparer();
  await p.prepare(msg('a'));
  const inv = await r.inventory();
  const foreign = inv.gpus[0]!.vfs[5]!.address;
  const typeId = inv.gpus[0]!.catalog.find((t) => t.profile === 'L40S-12Q')!.id;
  r.sim.port.writeCurrentVgpuType(foreign as never, typeId); // someone else's vGPU
  r.claims.set('b', claim('b', [{ device: dev12q, shareId: 's2' }]));
  assert.match((await p.prepare(msg('b'))).error, /holds devices the DRA driver did not make \(VF .* holds L40S-12Q\)/);
  assert.equal(await p.unprepare(msg('a')), '');
  assert.deepEqual(await r.vfs(), { [foreign]: 'L40S-12Q' }, 'only our vGPU went');
});

test('a GPU switched out of DRA mode takes no new claim, but a prepared claim still unprepares', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }]));
  r.claims.set('b', claim('b', [{ device: dev12q, shareId: 's2' }]));
  await r.preparer().prepare(msg('a'));
  const p = r.preparer({ draGpus: [] });
  assert.match((await p.prepare(msg('b'))).error, /not in DRA mode on this node now/);
  assert.equal(await p.unprepare(msg('a')), '');
  assert.deepEqual(await r.vfs(), {});
});

test('the whole GPU: Prepare binds it (and its audio function) to vfio-pci; Unprepare gives it back', async () => {
  const r = rig(L40S);
  r.claims.set('w', claim('w', [{ device: deviceName(GPU0, null) }]));
  const p = r.preparer();
  assert.equal((await p.prepare(msg('w'))).error, '');
  let g = (await r.inventory()).gpus[0]!;
  assert.equal(g.pci.driver, 'vfio-pci');
  assert.equal(g.framework, 'passthrough');
  assert.equal(await p.unprepare(msg('w')), '');
  g = (await r.inventory()).gpus[0]!;
  assert.equal(g.pci.driver, 'nvidia');
});

test('mdev (T4): two claims get two mdevs; removing the first keeps the second, with its UUID', async () => {
  const r = rig({ gpus: [{ model: 'T4', count: 1, mode: 'mdev-vgpu' }] });
  const t4 = (await r.inventory()).gpus[0]!.pci.address;
  const d = deviceName(t4, 'T4-4Q');
  r.claims.set('a', claim('a', [{ device: d, shareId: 's1' }]));
  r.claims.set('b', claim('b', [{ device: d, shareId: 's2' }]));
  const p = r.preparer();
  assert.equal((await p.prepare(msg('a'))).error, '');
  assert.equal((await p.prepare(msg('b'))).error, '');
  const uuidB = (r.checkpoint().get('uid-b')!.devices[0]!.target as { uuid: string }).uuid;
  const mdevs = () => r.inventory().then((inv) => inv.gpus[0]!.mdevParents.flatMap((m) => m.instances.map((i) => i.uuid)).sort());
  assert.equal((await mdevs()).length, 2);
  assert.equal(await p.unprepare(msg('a')), '');
  assert.deepEqual(await mdevs(), [uuidB]);
  const meta = fs.readFileSync(path.join(r.dir, 'plugin', 'dra-device-metadata', 'ns_b', 'gpu', 'metadata.json'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { requests: { devices: { attributes: Record<string, { string?: string }> }[] }[] });
  assert.equal(meta[1]!.requests[0]!.devices[0]!.attributes.mdevUUID?.string, uuidB, 'KubeVirt reads the mdev UUID under mdevUUID');
});

test('a claim whose opaque config is wrong is refused before anything is written', async () => {
  const r = rig(L40S);
  r.claims.set('a', claim('a', [{ device: dev12q, shareId: 's1' }], { config: { vgpuParams: { 'bad key': '1' } } }));
  r.claims.set('b', claim('b', [{ device: dev12q, shareId: 's2' }], { config: { color: 'blue' } }));
  const p = r.preparer();
  assert.match((await p.prepare(msg('a'))).error, /"bad key" is not a vgpu_params key/);
  assert.match((await p.prepare(msg('b'))).error, /unknown key "color"/);
  assert.equal(r.backend.writes, 0);
});
