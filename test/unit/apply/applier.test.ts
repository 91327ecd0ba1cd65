/**
 * The applier against the simulated driver's rules: retries with backoff on
 * EBUSY / unbindLock, values without a trailing newline, `0` before a type
 * change, vendor VFIO variants from modules.alias, sriov-manage versus
 * sriov_numvfs, and EBUSY at write time turned into a blocked step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplyError } from '../../../src/apply/apply.js';
import { applyOn, configOf, converge, assertMatches, planOn, sim, vfProfiles } from '../plan/helpers.js';

const PF = '0000:18:00.0';
const twelveQ = (n: number) => configOf(`- devices: all\n  vgpu-devices:\n    L40S-12Q: ${n}`);

void test('enabling VFs retries EBUSY "Cannot obtain unbindLock" with doubling backoff, then succeeds', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }], sriovManage: false, transientUnbindLockFailures: 3 });
  const { plan } = await planOn(node, twelveQ(2));
  const sleeps: number[] = [];
  const res = await applyOn(node, plan, { sleep: async (ms) => void sleeps.push(ms), backoffMs: 100 });
  assert.equal(res.failure, null);
  assert.deepEqual(sleeps, [100, 200, 400]);
  const numvfs = node.writeLog().filter((w) => w.path.endsWith('/sriov_numvfs'));
  assert.deepEqual(numvfs.map((w) => w.error), ['EBUSY', 'EBUSY', 'EBUSY', null]);
  assert.ok(numvfs.every((w) => w.data === '32'));
  await assertMatches(node, twelveQ(2));
});

void test('the retries are bounded: a lock that never frees fails the run with the kernel error', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }], sriovManage: false, transientUnbindLockFailures: 100 });
  const { plan } = await planOn(node, twelveQ(2));
  const res = await applyOn(node, plan, { enableRetries: 2 });
  assert.ok(res.failure);
  assert.match(res.failure.message, /0000:18:00\.0: enable 32 VFs.*EBUSY.*unbindLock/s);
  assert.equal(node.writeLog().filter((w) => w.path.endsWith('/sriov_numvfs')).length, 3, 'one try and two retries');
  assert.deepEqual(res.steps.map((s) => s.outcome), ['failed'], 'nothing after the failed step was attempted');
});

void test('sriov-manage is used when installed (default on a vGPU host), sriov_numvfs when not', async () => {
  const withTool = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }] });
  await converge(withTool, twelveQ(1));
  assert.deepEqual(withTool.writeLog().filter((w) => /sriov/.test(w.path)).map((w) => w.path), [`exec sriov-manage -e ${PF}`]);
  const without = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }], sriovManage: false });
  await converge(without, twelveQ(1));
  assert.deepEqual(without.writeLog().filter((w) => /sriov/.test(w.path)).map((w) => w.path), [`/sys/bus/pci/devices/${PF}/sriov_numvfs`]);
});

void test('values are written without a trailing newline; driver 595.58.02, which rejects one, accepts them', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }, { model: 'T4', mode: 'mdev-vgpu' }], driverVersion: '595.58.02' });
  await converge(node, configOf('- device-filter: "0x26B910DE"\n  devices: all\n  vgpu-devices:\n    L40S-12Q: 2\n  vgpu-params:\n    L40S-12Q: {frame_rate_limiter: 0}\n- device-filter: "0x1EB810DE"\n  devices: all\n  vgpu-devices:\n    T4-8Q: 2'));
  assert.ok(node.writes() >= 6);
  for (const w of node.writeLog()) {
    assert.equal(w.error, null, `${w.path} refused`);
    assert.ok(!w.data.endsWith('\n'), `${w.path} written with a trailing newline`);
  }
  assert.equal(node.gpus[0]!.vfs[0]!.params, 'frame_rate_limiter=0');
});

void test('a VF with another type is cleared with 0 before its new type is written', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q', 'L40S-12Q', 'L40S-12Q'] }] });
  const w = node.writes();
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    L40S-24Q: 2\n  vf-placement:\n    L40S-24Q: [0, 1]'));
  const vf0 = node.gpus[0]!.vfs[0]!.fn.addr;
  const onVf0 = node.writeLog().slice(w).filter((x) => x.path.includes(vf0)).map((x) => x.data);
  const id24 = node.gpus[0]!.types.find((t) => t.profile === 'L40S-24Q')!.id;
  assert.deepEqual(onVf0, ['0', String(id24)]);
  assert.ok(node.writeLog().slice(w).every((x) => x.error === null), 'the driver refused nothing');
  assert.deepEqual([...vfProfiles(node)], [[0, 'L40S-24Q'], [1, 'L40S-24Q']]);
});

void test('passthrough picks the vendor VFIO variant driver that modules.alias names, plain vfio-pci otherwise', async () => {
  const node = sim({ gpus: [{ model: 'H100', mode: 'sriov-vgpu' }, { model: 'L40S', mode: 'sriov-vgpu' }], vfioVariantFor: ['H100'] });
  const h100 = node.gpus.find((g) => g.model.key === 'H100')!.pf.addr;
  const l40s = node.gpus.find((g) => g.model.key === 'L40S')!.pf.addr;
  const cfg = configOf('- devices: all\n  mode: passthrough');
  const { plan } = await converge(node, cfg);
  const binds = Object.fromEntries(plan.actions.filter((a) => a.kind === 'bind-vfio').map((a) => [a.device, a.kind === 'bind-vfio' ? a.driver : '']));
  assert.deepEqual(binds, { [h100]: 'nvgrace_gpu_vfio_pci', [l40s]: 'vfio-pci' });
  assert.equal(node.gpus.find((g) => g.pf.addr === h100)!.pf.driver, 'nvgrace_gpu_vfio_pci');
  assert.equal(node.gpus.find((g) => g.pf.addr === l40s)!.pf.driver, 'vfio-pci');
  const overrides = node.writeLog().filter((w) => w.path.endsWith('/driver_override')).map((w) => `${w.path.split('/')[5]}=${w.data}`);
  assert.deepEqual(overrides.sort(), [`${h100}=nvgrace_gpu_vfio_pci`, `${l40s}=vfio-pci`].sort());
  await assertMatches(node, cfg);
});

void test('changes to devices in use are blocked and reported; the rest is applied', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] }] });
  const held = node.gpus[0]!.vfs[0]!.fn.addr;
  node.hold(held);
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    L40S-12Q: 1\n    L40S-4Q: 3\n  mixed-sizes: true'));
  // Switching mixed-size mode needs every vGPU cleared: one is held, so the switch waits for it (blocked, not
  // bad input), and nothing on the GPU changes meanwhile.
  assert.deepEqual(plan.errors, []);
  assert.deepEqual(plan.actions, []);
  assert.ok(plan.blocked.some((b) => b.waitsFor.includes(held) && /switch mixed-size mode on/.test(b.change)));
  const { plan: p2 } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    L40S-24Q: 2'));
  assert.deepEqual(p2.errors, []);
  assert.ok(p2.blocked.some((b) => b.device === held && /in use/.test(b.reason)), 'the held VF is reported as blocked');
  const res = await applyOn(node, p2);
  assert.equal(res.failure, null);
  assert.ok(res.blocked.length > 0);
  assert.equal(node.gpus[0]!.vfs[0]!.typeId, node.gpus[0]!.types.find((t) => t.profile === 'L40S-12Q')!.id, 'the held VF kept its type');
  assert.ok(!node.writeLog().some((w) => w.path.includes(held)), 'nothing was written to the held VF');
});

void test('a device taken by a VM between plan and apply: EBUSY from the driver becomes a blocked step, the run goes on', async () => {
  const node = sim({ gpus: [{ model: 'T4', mode: 'mdev-vgpu', profiles: ['T4-2Q', 'T4-2Q'] }] });
  const { plan } = await planOn(node, configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 2'));
  const victim = [...node.gpus[0]!.mdevs.keys()][0]!;
  node.hold(victim);
  const res = await applyOn(node, plan);
  assert.equal(res.failure, null, 'not a failure: apply exits "blocked" and the next run finishes the job');
  const blocked = res.steps.filter((s) => s.outcome === 'blocked');
  assert.match(blocked[0]!.detail ?? '', /EBUSY/);
  assert.equal(blocked[0]!.action.kind, 'remove-mdev');
  // The T4-4Q instances cannot be created next to the held T4-2Q (one type per GPU): blocked behind it.
  assert.ok(blocked.slice(1).every((s) => s.action.kind === 'create-mdev' && new RegExp(`waits for ${victim}`).test(s.detail ?? '')));
  assert.ok(res.blocked.some((b) => b.device === victim));
  assert.ok(node.gpus[0]!.mdevs.has(victim), 'the held mdev is still there');
  // Once the VM lets go, the next run converges.
  node.release(victim);
  await converge(node, configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 2'));
  await assertMatches(node, configOf('- devices: all\n  vgpu-devices:\n    T4-4Q: 2'));
});

void test('a plan with errors is refused by the applier before any write', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  const { plan } = await planOn(node, twelveQ(5));
  assert.ok(plan.errors.length > 0);
  await assert.rejects(applyOn(node, plan), (e: unknown) => e instanceof ApplyError && /nothing was written/.test(e.message));
  assert.equal(node.writes(), 0);
});

void test('a type that stopped being creatable since planning fails with the driver list in the message', async () => {
  const node = sim({ gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] });
  const { plan } = await planOn(node, twelveQ(4));
  // Someone else fills the card after the plan was made.
  const id48 = node.gpus[0]!.types.find((t) => t.profile === 'L40S-48Q')!.id;
  node.port.writeCurrentVgpuType(node.gpus[0]!.vfs[31]!.fn.addr as never, id48);
  const res = await applyOn(node, plan);
  assert.ok(res.failure);
  assert.match(res.failure.message, /L40S-12Q is not creatable on VF 0000:18:00\.4 now \(the driver lists: nothing\)/);
});
