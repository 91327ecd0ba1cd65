// Proves the Go test peers behave like the kubelet's side of the device plugin
// and pod-resources APIs, using a minimal device plugin written here with
// @grpc/grpc-js and our own proto files, and that those proto files describe
// the same API as the kubelet's generated code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  PeerCallError,
  describeProtoFile,
  describeUpstreamApi,
  startFakeKubelet,
  startPodResources,
  type Device,
  type PodSpec,
} from '../harness/peers.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LOAD_OPTS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true };

function loadService(protoRel: string, pkg: string, service: string): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(join(root, protoRel), LOAD_OPTS);
  const ns = grpc.loadPackageDefinition(def)[pkg] as grpc.GrpcObject;
  return ns[service] as grpc.ServiceClientConstructor;
}
const Registration = loadService('proto/deviceplugin/v1beta1/api.proto', 'v1beta1', 'Registration');
const DevicePlugin = loadService('proto/deviceplugin/v1beta1/api.proto', 'v1beta1', 'DevicePlugin');
const PodResourcesLister = loadService('proto/podresources/v1/api.proto', 'v1', 'PodResourcesLister');

function unary<Res>(client: grpc.Client, method: string, req: object): Promise<Res> {
  const fn = (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v: Res) => void) => void>)[method];
  if (!fn) throw new Error(`no method ${method}`);
  return new Promise((resolvePromise, rejectPromise) => {
    fn.call(client, req, (err, value) => (err ? rejectPromise(err) : resolvePromise(value)));
  });
}

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

const RESOURCE = 'nvidia.com/L40S-12Q';
const ENDPOINT = 'vmgpu-test-L40S-12Q.sock';

/** A device plugin reduced to what the peers need to be exercised. */
class TestPlugin {
  private server: grpc.Server | undefined;
  private readonly streams = new Set<grpc.ServerWritableStream<object, { devices: Device[] }>>();
  readonly prestarted: string[][] = [];

  constructor(
    readonly dir: string,
    private devices: Device[],
    readonly options = { pre_start_required: true, get_preferred_allocation_available: true },
  ) {}

  get socketPath(): string {
    return join(this.dir, ENDPOINT);
  }

  async serve(): Promise<void> {
    const server = new grpc.Server();
    const known = () => new Set(this.devices.map((d) => d.ID));
    server.addService(DevicePlugin.service, {
      GetDevicePluginOptions: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, this.options),
      ListAndWatch: (call: grpc.ServerWritableStream<object, { devices: Device[] }>) => {
        this.streams.add(call);
        call.on('cancelled', () => this.streams.delete(call));
        call.write({ devices: this.devices });
      },
      Allocate: (call: grpc.ServerUnaryCall<{ container_requests: { devices_ids: string[] }[] }, object>, cb: grpc.sendUnaryData<object>) => {
        const ids = known();
        const responses = [];
        for (const req of call.request.container_requests) {
          const unknown = req.devices_ids.find((id) => !ids.has(id));
          if (unknown !== undefined) {
            cb({ code: grpc.status.INVALID_ARGUMENT, details: `unknown device ${unknown}` });
            return;
          }
          responses.push({
            envs: { TEST_DEVICES: req.devices_ids.join(',') },
            mounts: [{ container_path: '/run/test', host_path: '/var/run/test', read_only: true }],
            devices: req.devices_ids.map((id) => ({ container_path: `/dev/test/${id}`, host_path: `/dev/test/${id}`, permissions: 'mrw' })),
            annotations: { 'test.example.com/count': String(req.devices_ids.length) },
            cdi_devices: [{ name: `example.com/test=${req.devices_ids[0] ?? ''}` }],
          });
        }
        cb(null, { container_responses: responses });
      },
      GetPreferredAllocation: (
        call: grpc.ServerUnaryCall<{ container_requests: { available_deviceIDs: string[]; must_include_deviceIDs: string[]; allocation_size: number }[] }, object>,
        cb: grpc.sendUnaryData<object>,
      ) => {
        cb(null, {
          container_responses: call.request.container_requests.map((r) => {
            const chosen = [...r.must_include_deviceIDs];
            for (const id of [...r.available_deviceIDs].reverse()) if (chosen.length < r.allocation_size && !chosen.includes(id)) chosen.push(id);
            return { deviceIDs: chosen };
          }),
        });
      },
      PreStartContainer: (call: grpc.ServerUnaryCall<{ devices_ids: string[] }, object>, cb: grpc.sendUnaryData<object>) => {
        this.prestarted.push(call.request.devices_ids);
        cb(null, {});
      },
    });
    await new Promise<void>((resolvePromise, rejectPromise) =>
      server.bindAsync(`unix://${this.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? rejectPromise(err) : resolvePromise())),
    );
    this.server = server;
  }

  async register(resourceName = RESOURCE, endpoint = ENDPOINT, version = 'v1beta1'): Promise<void> {
    const client = new Registration(`unix://${join(this.dir, 'kubelet.sock')}`, grpc.credentials.createInsecure());
    try {
      await unary(client, 'Register', { version, endpoint, resource_name: resourceName, options: this.options });
    } finally {
      client.close();
    }
  }

  setDevices(devices: Device[]): void {
    this.devices = devices;
    for (const s of this.streams) s.write({ devices });
  }

  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
    this.streams.clear();
  }

  /** What a plugin must do when the kubelet restarts: serve a new socket and register again. */
  async restart(): Promise<void> {
    this.stop();
    await this.serve();
    await this.register();
  }
}

const DEVICES: Device[] = [
  { ID: 'vf-0000-41-00-4', health: 'Healthy', topology: { nodes: [{ ID: 0 }] } },
  { ID: 'vf-0000-41-00-5', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } },
  { ID: 'vf-0000-41-00-6', health: 'Healthy', topology: null },
];

void test('our proto files describe the same API as the kubelet module the peers are built from', () => {
  assert.deepEqual(describeProtoFile('proto/deviceplugin/v1beta1/api.proto'), describeUpstreamApi('deviceplugin'));
  assert.deepEqual(describeProtoFile('proto/podresources/v1/api.proto'), describeUpstreamApi('podresources'));
});

void test('fake kubelet: registration with retry, device stream, and every plugin RPC round trip', async (t) => {
  const dir = tempDir('vmgpu-dp-');
  const kubelet = await startFakeKubelet(dir, { rejectFirst: 1 });
  const plugin = new TestPlugin(dir, DEVICES);
  t.after(async () => {
    plugin.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await plugin.serve();

  // The first registration is refused (-reject-first 1) the way the kubelet refuses: a plain error.
  await assert.rejects(plugin.register(), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.UNKNOWN);
    assert.match(err.details, /rejected on purpose/);
    return true;
  });
  const rejected = await kubelet.waitFor('rejected');
  assert.equal(rejected.resourceName, RESOURCE);

  await plugin.register();
  const registered = await kubelet.waitFor('registered');
  assert.deepEqual(registered, { event: 'registered', resourceName: RESOURCE, endpoint: ENDPOINT, version: 'v1beta1', options: plugin.options });

  const options = await kubelet.waitFor('options');
  assert.deepEqual(options.options, plugin.options);

  // Zero values survive (NUMA node 0), and an unset topology is null.
  const first = await kubelet.waitFor('devices');
  assert.equal(first.resourceName, RESOURCE);
  assert.deepEqual(first.devices, DEVICES);

  const mark = kubelet.mark();
  const updated: Device[] = [{ ...DEVICES[0]!, health: 'Unhealthy' }, DEVICES[1]!, DEVICES[2]!];
  plugin.setDevices(updated);
  const second = await kubelet.waitFor('devices', undefined, { from: mark });
  assert.deepEqual(second.devices, updated);

  const alloc = await kubelet.allocate(RESOURCE, [['vf-0000-41-00-4'], ['vf-0000-41-00-5', 'vf-0000-41-00-6']]);
  assert.deepEqual(alloc, {
    container_responses: [
      {
        envs: { TEST_DEVICES: 'vf-0000-41-00-4' },
        mounts: [{ container_path: '/run/test', host_path: '/var/run/test', read_only: true }],
        devices: [{ container_path: '/dev/test/vf-0000-41-00-4', host_path: '/dev/test/vf-0000-41-00-4', permissions: 'mrw' }],
        annotations: { 'test.example.com/count': '1' },
        cdi_devices: [{ name: 'example.com/test=vf-0000-41-00-4' }],
      },
      {
        envs: { TEST_DEVICES: 'vf-0000-41-00-5,vf-0000-41-00-6' },
        mounts: [{ container_path: '/run/test', host_path: '/var/run/test', read_only: true }],
        devices: [
          { container_path: '/dev/test/vf-0000-41-00-5', host_path: '/dev/test/vf-0000-41-00-5', permissions: 'mrw' },
          { container_path: '/dev/test/vf-0000-41-00-6', host_path: '/dev/test/vf-0000-41-00-6', permissions: 'mrw' },
        ],
        annotations: { 'test.example.com/count': '2' },
        cdi_devices: [{ name: 'example.com/test=vf-0000-41-00-5' }],
      },
    ],
  });

  await assert.rejects(kubelet.allocate(RESOURCE, [['no-such-device']]), (err: PeerCallError) => {
    assert.ok(err instanceof PeerCallError);
    assert.equal(err.code, 'InvalidArgument');
    assert.match(err.message, /unknown device no-such-device/);
    return true;
  });
  await assert.rejects(kubelet.allocate('nvidia.com/not-served', [['x']]), (err: PeerCallError) => err.code === 'NotRegistered');

  const preferred = await kubelet.preferred(RESOURCE, [
    { available: ['vf-0000-41-00-4', 'vf-0000-41-00-5', 'vf-0000-41-00-6'], mustInclude: ['vf-0000-41-00-4'], size: 2 },
  ]);
  assert.deepEqual(preferred, { container_responses: [{ deviceIDs: ['vf-0000-41-00-4', 'vf-0000-41-00-6'] }] });

  assert.deepEqual(await kubelet.options(RESOURCE), plugin.options);

  await kubelet.prestart(RESOURCE, ['vf-0000-41-00-5']);
  assert.deepEqual(plugin.prestarted, [['vf-0000-41-00-5']]);

  assert.deepEqual(await kubelet.state(), [
    { resourceName: RESOURCE, endpoint: ENDPOINT, version: 'v1beta1', options: plugin.options, streaming: true, devices: updated },
  ]);
});

void test('fake kubelet: a restart deletes every socket in the directory, and the plugin registers again', async (t) => {
  const dir = tempDir('vmgpu-dp-');
  const kubelet = await startFakeKubelet(dir);
  const plugin = new TestPlugin(dir, DEVICES);
  t.after(async () => {
    plugin.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, 'kubelet_internal_checkpoint'), '{}');
  await plugin.serve();
  await plugin.register();
  await kubelet.waitFor('devices');

  const mark = kubelet.mark();
  await kubelet.restart();
  const closed = await kubelet.waitFor('stream-closed', undefined, { from: mark });
  assert.equal(closed.reason, 'kubelet-restart');
  assert.equal(existsSync(plugin.socketPath), false, 'the plugin socket must be deleted by the restart');
  assert.ok(lstatSync(kubelet.socketPath).isSocket(), 'kubelet.sock must be served again');
  assert.ok(existsSync(join(dir, 'kubelet_internal_checkpoint')), 'files that are not sockets stay');
  assert.deepEqual(await kubelet.state(), []);
  await assert.rejects(kubelet.allocate(RESOURCE, [['vf-0000-41-00-4']]), (err: PeerCallError) => err.code === 'NotRegistered');

  await plugin.restart();
  await kubelet.waitFor('registered', (e) => e.resourceName === RESOURCE, { from: mark });
  const devices = await kubelet.waitFor('devices', undefined, { from: mark });
  assert.deepEqual(devices.devices, DEVICES);
  const alloc = await kubelet.allocate(RESOURCE, [['vf-0000-41-00-6']]);
  assert.deepEqual(alloc.container_responses[0]?.envs, { TEST_DEVICES: 'vf-0000-41-00-6' });
});

void test('fake kubelet: refuses registrations the kubelet would refuse', async (t) => {
  const dir = tempDir('vmgpu-dp-');
  const kubelet = await startFakeKubelet(dir);
  const plugin = new TestPlugin(dir, DEVICES);
  t.after(async () => {
    plugin.stop();
    await kubelet.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await plugin.serve();
  const cases: [string, string, string, RegExp][] = [
    ['L40S-12Q', ENDPOINT, 'v1beta1', /needs a domain prefix/],
    ['nvidia.com/GRID T4-1Q', ENDPOINT, 'v1beta1', /name part/],
    ['kubernetes.io/gpu', ENDPOINT, 'v1beta1', /reserved/],
    [RESOURCE, ENDPOINT, 'v1alpha1', /not supported/],
    [RESOURCE, '../escape.sock', 'v1beta1', /plain socket file name/],
  ];
  for (const [resourceName, endpoint, version, why] of cases) {
    const mark = kubelet.mark();
    await assert.rejects(plugin.register(resourceName, endpoint, version), (err: grpc.ServiceError) => why.test(err.details));
    const ev = await kubelet.waitFor('rejected', undefined, { from: mark });
    assert.equal(ev.resourceName, resourceName);
    assert.match(ev.message, why);
  }
  assert.equal(kubelet.events.filter((e) => e.event === 'registered').length, 0);
});

void test('fake pod-resources: List, Get and GetAllocatableResources follow the pods file', async (t) => {
  const dir = tempDir('vmgpu-pr-');
  const socketPath = join(dir, 'kubelet.sock');
  const pods: PodSpec[] = [
    {
      name: 'virt-launcher-vm1-abcde',
      namespace: 'tenant-a',
      containers: [{ name: 'compute', devices: [{ resourceName: RESOURCE, deviceIds: ['vf-0000-41-00-4'], numaNodes: [0] }] }],
    },
  ];
  const server = await startPodResources(socketPath, pods, { allocatable: [{ resourceName: RESOURCE, deviceIds: ['vf-0000-41-00-4', 'vf-0000-41-00-5'] }] });
  const client = new PodResourcesLister(`unix://${socketPath}`, grpc.credentials.createInsecure());
  t.after(async () => {
    client.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const containerDefaults = { cpu_ids: [], memory: [], dynamic_resources: [] };
  const podDefaults = { cpu_ids: [], memory: [] };
  const list1 = await unary<{ pod_resources: unknown[] }>(client, 'List', {});
  assert.deepEqual(list1.pod_resources, [
    {
      name: 'virt-launcher-vm1-abcde',
      namespace: 'tenant-a',
      ...podDefaults,
      containers: [
        {
          name: 'compute',
          ...containerDefaults,
          devices: [{ resource_name: RESOURCE, device_ids: ['vf-0000-41-00-4'], topology: { nodes: [{ ID: 0 }] } }],
        },
      ],
    },
  ]);

  const mark = server.mark();
  server.setPods([
    ...pods,
    { name: 'virt-launcher-vm2-fghij', namespace: 'tenant-b', containers: [{ name: 'compute', devices: [{ resourceName: RESOURCE, deviceIds: ['vf-0000-41-00-5'] }] }] },
  ]);
  const list2 = await unary<{ pod_resources: { name: string; containers: { devices: { device_ids: string[]; topology: unknown }[] }[] }[] }>(client, 'List', {});
  assert.deepEqual(
    list2.pod_resources.map((p) => [p.name, p.containers[0]?.devices[0]?.device_ids]),
    [
      ['virt-launcher-vm1-abcde', ['vf-0000-41-00-4']],
      ['virt-launcher-vm2-fghij', ['vf-0000-41-00-5']],
    ],
  );
  assert.equal(list2.pod_resources[1]?.containers[0]?.devices[0]?.topology, null);
  await server.waitForEvent((e) => e.event === 'call' && e.method === 'List', 5_000, mark);

  const got = await unary<{ pod_resources: { name: string; namespace: string } }>(client, 'Get', { pod_name: 'virt-launcher-vm2-fghij', pod_namespace: 'tenant-b' });
  assert.equal(got.pod_resources.name, 'virt-launcher-vm2-fghij');
  assert.equal(got.pod_resources.namespace, 'tenant-b');
  await assert.rejects(unary(client, 'Get', { pod_name: 'gone', pod_namespace: 'tenant-b' }), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.UNKNOWN);
    assert.match(err.details, /pod gone not found in namespace tenant-b/);
    return true;
  });

  const alloc = await unary<{ devices: { resource_name: string; device_ids: string[] }[] }>(client, 'GetAllocatableResources', {});
  assert.deepEqual(
    alloc.devices.map((d) => [d.resource_name, d.device_ids]),
    [[RESOURCE, ['vf-0000-41-00-4', 'vf-0000-41-00-5']]],
  );

  const beforeLast = server.mark();
  server.setPods([]);
  const list3 = await unary<{ pod_resources: unknown[] }>(client, 'List', {});
  assert.deepEqual(list3.pod_resources, []);
  // Each RPC is reported once (the report can trail the answer, so wait for the last one).
  await server.waitForEvent((e) => e.event === 'call' && e.method === 'List', 5_000, beforeLast);
  assert.deepEqual(
    server.events.flatMap((e) => (e.event === 'call' ? [e.method] : [])),
    ['List', 'List', 'Get', 'Get', 'GetAllocatableResources', 'List'],
  );
});
