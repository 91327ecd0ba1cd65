/**
 * One kubelet device plugin: a gRPC DevicePlugin server on its own unix socket
 * in the plugin directory, registered with the kubelet's Registration service,
 * serving one resource. The manager (manager.ts) feeds it devices and health
 * and tells it when the kubelet restarted.
 */
import type { EventEmitter } from 'node:events';
import { existsSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { SysfsPort } from '../../sysfs/port.js';
import { AllocationError, allocateContainer, type ContainerAllocation } from './allocate.js';
import { preferredDevices } from './preferred.js';
import { compileCheck, type DeviceCheck } from './health.js';
import type { Logger } from '../kube/logger.js';
import { pluginSocketName } from './naming.js';
import {
  API_VERSION,
  KUBELET_SOCKET,
  loadDevicePluginApi,
  unixTarget,
  type AllocateRequestMsg,
  type DeviceMsg,
  type DevicePluginOptionsMsg,
  type ListAndWatchResponseMsg,
  type PreferredAllocationRequestMsg,
  type PreferredAllocationResponseMsg,
  type RegisterRequestMsg,
} from '../kubelet/device-plugin-api.js';
import type { DeviceEntry, ResourceSpec } from './resources.js';
import { messageOf } from '../errors.js';

export interface PluginEnv {
  pluginDir: string;
  port: SysfsPort;
  iommufd: boolean;
  logger: Logger;
  events: EventEmitter;
  registerTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
}

const PLUGIN_OPTIONS: DevicePluginOptionsMsg = { pre_start_required: false, get_preferred_allocation_available: true };

type Stream = grpc.ServerWritableStream<unknown, ListAndWatchResponseMsg>;

/**
 * Identity of a file, to tell a recreated socket from the old one even when
 * the inode number is reused: device, inode and birth time; where the file
 * system records no birth time, the ctime stands in for it (then a chmod
 * also counts as a new file).
 */
export function fileIdentity(path: string): string | null {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.birthtimeNs > 0n ? st.birthtimeNs : `c${st.ctimeNs}`}`;
  } catch {
    return null;
  }
}

export class ResourcePlugin {
  readonly resourceName: string;
  readonly socketName: string;
  readonly socketPath: string;
  private spec: ResourceSpec;
  private devices = new Map<string, DeviceEntry>();
  private checks = new Map<string, DeviceCheck>();
  /** Device ID -> null (healthy) or why it is unhealthy. */
  private health = new Map<string, string | null>();
  private response: ListAndWatchResponseMsg | null = null;
  private streams = new Set<Stream>();
  private server: grpc.Server | null = null;
  private socketId: string | null = null;
  /**
   * The (kubelet instance, our server) pair the last registration was made
   * for. A plugin registers once per pair: a kubelet restart noticed twice,
   * or while the Register to the new kubelet is in flight, registers once.
   */
  private registeredFor: string | null = null;
  private inflightFor: string | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private kickPending = false;
  private loop: Promise<void> | null = null;
  private ops: Promise<void> = Promise.resolve();
  private restartQueued = false;
  /** The registration call in flight, cancelled by a restart. */
  private inflight: grpc.ClientUnaryCall | null = null;
  private busy = false;

  constructor(
    spec: ResourceSpec,
    private readonly env: PluginEnv,
  ) {
    this.resourceName = spec.resourceName;
    this.socketName = pluginSocketName(spec.resourceName);
    this.socketPath = join(env.pluginDir, this.socketName);
    this.spec = spec;
    this.setSpec(spec, false);
  }

  get kind() {
    return this.spec.kind;
  }

  get source() {
    return this.spec.source;
  }

  /** Whether this kubelet instance has our registration for the server we run now. */
  isRegistered(): boolean {
    return this.registeredFor !== null && this.registeredFor === this.registrationKey();
  }

  /** The kubelet instance and our server, as a key; null when either is missing. */
  private registrationKey(): string | null {
    const kubelet = fileIdentity(join(this.env.pluginDir, KUBELET_SOCKET));
    return kubelet === null || this.socketId === null ? null : `${kubelet}|${this.socketId}`;
  }

  /** Serve, then register in the background (retried with backoff, never fatal). */
  async start(): Promise<void> {
    await this.serialize(() => this.serve());
    this.loop = this.registerLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.inflight?.cancel();
    this.wake?.();
    await this.serialize(async () => this.closeServer());
    await this.loop;
  }

  /**
   * The kubelet restarted or deleted our socket: serve again when our socket
   * is gone or replaced, then register unless this kubelet instance already
   * has (or is being sent) a registration for the server we run.
   */
  restart(reason: string): Promise<void> {
    if (this.stopped || this.restartQueued) return this.ops;
    this.restartQueued = true;
    return this.serialize(async () => {
      this.restartQueued = false;
      if (this.stopped) return;
      if (fileIdentity(this.socketPath) !== this.socketId) {
        this.env.logger.info('restarting device plugin', { resource: this.resourceName, reason });
        this.env.events.emit('restarted', { resource: this.resourceName, reason });
        await this.serve();
      }
      // A registration on its way for another pair (an old kubelet, a server we replaced) is void.
      if (this.inflightFor !== null && this.inflightFor !== this.registrationKey()) this.inflight?.cancel();
      this.kick();
    });
  }

  /** Try to register now (the kubelet socket appeared). */
  kick(): void {
    this.kickPending = true;
    this.wake?.();
  }

  /** Our socket file is missing or replaced while we think we serve it. */
  socketLost(): boolean {
    if (this.busy || this.stopped || this.server === null || this.restartQueued) return false;
    return fileIdentity(this.socketPath) !== this.socketId;
  }

  /** New device set from an inventory update; pushes to the kubelet when anything changed. */
  setSpec(spec: ResourceSpec, push = true): void {
    this.spec = spec;
    const next = new Map(spec.devices.map((d) => [d.id, d]));
    let changed = next.size !== this.devices.size;
    for (const [id, d] of next) {
      const old = this.devices.get(id);
      if (!old || JSON.stringify(old) !== JSON.stringify(d)) {
        changed = true;
        this.checks.set(id, compileCheck(this.env.port, d, { iommufd: this.env.iommufd }));
        this.health.set(id, this.checks.get(id)!());
      }
    }
    for (const id of this.devices.keys()) {
      if (!next.has(id)) {
        this.checks.delete(id);
        this.health.delete(id);
      }
    }
    this.devices = next;
    if (changed) {
      this.response = null;
      if (push) this.push();
    }
  }

  /** Run every device's health check; push once if any changed. Returns the number of changes. */
  sweep(): number {
    let changes = 0;
    for (const [id, check] of this.checks) {
      const why = check();
      const before = this.health.get(id);
      if (before === why || (before !== null && why !== null)) {
        if (before !== why) this.health.set(id, why);
        continue;
      }
      changes++;
      this.health.set(id, why);
      if (why === null) this.env.logger.info('device healthy again', { resource: this.resourceName, device: id });
      else this.env.logger.warn('device unhealthy', { resource: this.resourceName, device: id, reason: why });
      this.env.events.emit('health', { resource: this.resourceName, device: id, healthy: why === null, reason: why });
    }
    if (changes > 0) {
      this.response = null;
      this.push();
    }
    return changes;
  }

  /** Current devices with health, as ListAndWatch sends them. */
  listResponse(): ListAndWatchResponseMsg {
    if (this.response) return this.response;
    const devices: DeviceMsg[] = [];
    for (const d of this.devices.values()) {
      const msg: DeviceMsg = { ID: d.id, health: this.health.get(d.id) === null ? 'Healthy' : 'Unhealthy' };
      if (d.numaNode >= 0) msg.topology = { nodes: [{ ID: d.numaNode }] };
      devices.push(msg);
    }
    this.response = { devices };
    return this.response;
  }

  healthOf(id: string): { healthy: boolean; reason: string | null } | undefined {
    if (!this.health.has(id)) return undefined;
    const reason = this.health.get(id) ?? null;
    return { healthy: reason === null, reason };
  }

  /** The Allocate answer for a whole request (exported for benchmarks of the pure part). */
  allocate(req: AllocateRequestMsg): { container_responses: ContainerAllocation[] } {
    const ctx = {
      resourceName: this.resourceName,
      kind: this.spec.kind,
      devices: this.devices,
      // Checked now: a node removed since the last sweep is never handed out.
      unhealthy: (id: string) => {
        const check = this.checks.get(id);
        return check ? check() : 'not a device of this resource';
      },
      iommufd: this.env.iommufd,
      driverVersion: this.spec.driverVersion,
    };
    return { container_responses: (req.container_requests ?? []).map((c) => allocateContainer(ctx, c.devices_ids ?? [])) };
  }

  preferred(req: PreferredAllocationRequestMsg): PreferredAllocationResponseMsg {
    return {
      container_responses: (req.container_requests ?? []).map((c) => ({
        deviceIDs: preferredDevices(this.devices, this.spec.driverVersion, { available: c.available_deviceIDs ?? [], mustInclude: c.must_include_deviceIDs ?? [], size: c.allocation_size }),
      })),
    };
  }


  // ------------------------------------------------------------------ internals

  private push(): void {
    if (this.streams.size === 0) return;
    const msg = this.listResponse();
    for (const s of this.streams) s.write(msg);
    this.env.events.emit('pushed', { resource: this.resourceName, devices: msg.devices });
  }

  private serialize(op: () => Promise<void>): Promise<void> {
    const next = this.ops.then(async () => {
      this.busy = true;
      try {
        await op();
      } finally {
        this.busy = false;
      }
    });
    this.ops = next.catch((err: unknown) => {
      this.env.logger.error('device plugin server operation failed', { resource: this.resourceName, error: String(err) });
    });
    return this.ops;
  }

  private closeServer(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
    if (this.server) {
      this.server.forceShutdown();
      this.server = null;
    }
    this.socketId = null;
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
  }

  private async serve(): Promise<void> {
    this.closeServer();
    const api = loadDevicePluginApi();
    const server = new grpc.Server();
    server.addService(api.devicePluginService, {
      GetDevicePluginOptions: (_call: unknown, cb: grpc.sendUnaryData<DevicePluginOptionsMsg>) => cb(null, PLUGIN_OPTIONS),
      ListAndWatch: (call: Stream) => {
        this.streams.add(call);
        const drop = () => this.streams.delete(call);
        call.on('cancelled', drop);
        call.on('close', drop);
        call.on('error', drop);
        call.write(this.listResponse());
      },
      GetPreferredAllocation: (call: grpc.ServerUnaryCall<PreferredAllocationRequestMsg, unknown>, cb: grpc.sendUnaryData<PreferredAllocationResponseMsg>) => {
        cb(null, this.preferred(call.request));
      },
      Allocate: (call: grpc.ServerUnaryCall<AllocateRequestMsg, unknown>, cb: grpc.sendUnaryData<{ container_responses: ContainerAllocation[] }>) => {
        try {
          const res = this.allocate(call.request);
          cb(null, res);
          this.env.events.emit('allocated', { resource: this.resourceName, containers: res.container_responses.length, devices: (call.request.container_requests ?? []).reduce((n, c) => n + (c.devices_ids ?? []).length, 0) });
        } catch (err) {
          if (err instanceof AllocationError) {
            this.env.events.emit('allocate-refused', { resource: this.resourceName, reason: err.reason });
            this.env.logger.warn('allocate refused', { resource: this.resourceName, reason: err.reason, error: err.message });
            cb({ code: err.reason === 'unhealthy-device' || err.reason === 'multi-vgpu' ? grpc.status.FAILED_PRECONDITION : grpc.status.INVALID_ARGUMENT, details: err.message });
          } else {
            cb({ code: grpc.status.INTERNAL, details: `Allocate for ${this.resourceName} failed: ${String(err)}` });
          }
        }
      },
      PreStartContainer: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, {}),
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(unixTarget(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new Error(`cannot listen on ${this.socketPath}: ${err.message}. Is the plugin directory writable and the path shorter than 108 bytes?`)) : resolve()));
    });
    this.server = server;
    this.socketId = fileIdentity(this.socketPath);
  }

  /** Wait `ms`, or less when kicked or stopped. */
  private sleep(ms: number): Promise<void> {
    if (this.kickPending || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private registerOnce(key: string | null): Promise<void> {
    const kubelet = join(this.env.pluginDir, KUBELET_SOCKET);
    if (key === null || !existsSync(kubelet)) return Promise.reject(new KubeletAbsent(kubelet));
    const api = loadDevicePluginApi();
    const client = new api.RegistrationClient(unixTarget(kubelet), grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Register(req: RegisterRequestMsg, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): grpc.ClientUnaryCall;
    };
    const req: RegisterRequestMsg = { version: API_VERSION, endpoint: this.socketName, resource_name: this.resourceName, options: PLUGIN_OPTIONS };
    return new Promise<void>((resolve, reject) => {
      this.inflightFor = key;
      this.inflight = client.Register(req, { deadline: Date.now() + this.env.registerTimeoutMs }, (err) => {
        this.inflight = null;
        this.inflightFor = null;
        client.close();
        if (err) reject(err);
        else resolve();
      });
    });
  }

  private async registerLoop(): Promise<void> {
    let delay = this.env.backoffInitialMs;
    let failures = 0;
    let lastMessage = '';
    while (!this.stopped) {
      this.kickPending = false;
      await this.ops; // never register while the server is being (re)started
      if (this.stopped) break;
      const key = this.registrationKey();
      if (key !== null && key === this.registeredFor) {
        await this.sleep(3_600_000); // until kicked: a restart, a new kubelet
        continue;
      }
      const started = Date.now();
      try {
        await this.registerOnce(key);
        if (this.stopped) break;
        this.registeredFor = key;
        this.env.logger.info('registered with the kubelet', { resource: this.resourceName, endpoint: this.socketName, attempts: failures + 1 });
        this.env.events.emit('registered', { resource: this.resourceName, endpoint: this.socketName, attempts: failures + 1, ms: Date.now() - started });
        failures = 0;
        lastMessage = '';
        delay = this.env.backoffInitialMs;
      } catch (err) {
        failures++;
        const absent = err instanceof KubeletAbsent;
        const message = absent ? err.message : `the kubelet refused or did not answer the registration: ${messageOf(err)}`;
        if (message !== lastMessage) {
          if (absent) this.env.logger.info('waiting for the kubelet', { resource: this.resourceName, socket: (err as KubeletAbsent).path, retry: 'with backoff, and at once when the socket appears' });
          else this.env.logger.warn('registration failed; will retry', { resource: this.resourceName, error: message, retryInMs: delay });
          lastMessage = message;
        }
        this.env.events.emit('registration-failed', { resource: this.resourceName, error: message, attempt: failures });
        if (this.stopped) break;
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.env.backoffMaxMs);
      }
    }
  }
}

class KubeletAbsent extends Error {
  constructor(readonly path: string) {
    super(`the kubelet's socket ${path} does not exist yet`);
  }
}
