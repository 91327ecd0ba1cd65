/**
 * The kubelet plugin's sockets, spoken to as the kubelet does: GetInfo on the
 * registration socket, Prepare/Unprepare on the announced endpoint (an
 * optional share_id survives the wire), the health stream, and the sockets
 * gone after stop (the kubelet then deregisters the driver).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DraPlugin } from '../../../../src/serve/dra/plugin.js';
import { memoryLogger } from '../../../../src/serve/kube/logger.js';
import { loadDraApi, type PluginInfoMsg, type PrepareResponseMsg, type WatchResourcesResponseMsg } from '../../../../src/serve/kubelet/dra-api.js';

type Unary<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;

test('the kubelet registers the driver, prepares through its endpoint and watches its health', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-dra-plugin-'));
  let health: WatchResourcesResponseMsg = { devices: [{ device: { pool_name: 'n', device_name: 'd' }, health: 'HEALTHY', last_updated_time: 1, health_check_timeout_seconds: 0, message: '' }] };
  const plugin = new DraPlugin(
    { registryDir: join(dir, 'registry'), pluginsDir: join(dir, 'plugins'), kubeletPluginsDir: '/var/lib/kubelet/plugins' },
    {
      prepare: async (req) => ({ claims: Object.fromEntries(req.claims.map((c) => [c.uid, { devices: [{ request_names: ['gpu'], pool_name: 'n', device_name: 'd', cdi_device_ids: ['gpu.vmgpu.io/vgpu=x'], share_id: 's-1' }], error: '' }])) }),
      unprepare: async (req) => ({ claims: Object.fromEntries(req.claims.map((c) => [c.uid, { error: 'busy' }])) }),
      health: () => health,
    },
    memoryLogger(),
  );
  await plugin.start();
  const api = loadDraApi();
  const reg = new api.RegistrationClient(`unix://${join(dir, 'registry', 'gpu.vmgpu.io-reg.sock')}`, grpc.credentials.createInsecure());
  const dra = new api.DraClient(`unix://${join(dir, 'plugins', 'gpu.vmgpu.io', 'dra.sock')}`, grpc.credentials.createInsecure());
  const hc = new api.HealthClient(`unix://${join(dir, 'plugins', 'gpu.vmgpu.io', 'dra.sock')}`, grpc.credentials.createInsecure());
  const call = <Req, Res>(c: grpc.Client, m: string, req: Req) => new Promise<Res>((res, rej) => (c as unknown as Record<string, Unary<Req, Res>>)[m]!.call(c, req, (e, r) => (e ? rej(e) : res(r!))));
  try {
    const info = await call<object, PluginInfoMsg>(reg, 'GetInfo', {});
    assert.deepEqual(info, { type: 'DRAPlugin', name: 'gpu.vmgpu.io', endpoint: '/var/lib/kubelet/plugins/gpu.vmgpu.io/dra.sock', supported_versions: ['v1.DRAPlugin', 'v1.DRAResourceHealth'] });
    await call(reg, 'NotifyRegistrationStatus', { plugin_registered: true, error: '' });
    assert.equal(plugin.isRegistered(), true);
    const prepared = await call<object, PrepareResponseMsg>(dra, 'NodePrepareResources', { claims: [{ namespace: 'ns', name: 'a', uid: 'u1' }] });
    assert.equal(prepared.claims.u1!.devices[0]!.share_id, 's-1');
    assert.deepEqual(await call(dra, 'NodeUnprepareResources', { claims: [{ namespace: 'ns', name: 'a', uid: 'u1' }] }), { claims: { u1: { error: 'busy' } } });
    const stream = (hc as unknown as { NodeWatchResources(req: object): grpc.ClientReadableStream<WatchResourcesResponseMsg> }).NodeWatchResources({});
    const got: WatchResourcesResponseMsg[] = [];
    stream.on('data', (m: WatchResourcesResponseMsg) => got.push(m));
    stream.on('error', () => {});
    while (got.length < 1) await new Promise((r) => setTimeout(r, 10));
    health = { devices: [{ ...health.devices[0]!, health: 'UNHEALTHY', message: 'gone' }] };
    plugin.healthChanged();
    while (got.length < 2) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got.map((m) => m.devices[0]!.health), ['HEALTHY', 'UNHEALTHY']);
    stream.cancel();
  } finally {
    reg.close();
    dra.close();
    hc.close();
    await plugin.stop();
  }
  assert.equal(existsSync(join(dir, 'registry', 'gpu.vmgpu.io-reg.sock')), false, 'the registration socket is gone');
});
