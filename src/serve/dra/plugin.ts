/**
 * The DRA driver's kubelet plugin: two unix sockets.
 * - `<registry dir>/gpu.vmgpu.io-reg.sock` serves pluginregistration.Registration:
 *   the kubelet's plugin watcher finds it, asks GetInfo (type DRAPlugin, the
 *   driver name, the endpoint, the services) and reports the outcome;
 * - `<plugins dir>/gpu.vmgpu.io/dra.sock` (the endpoint) serves v1.DRAPlugin
 *   (Prepare/Unprepare, one claim at a time) and v1.DRAResourceHealth.
 * The endpoint is announced as the kubelet sees it, which may differ from
 * where this process binds it (a test runs the kubelet in another mount
 * namespace).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../kube/logger.js';
import {
  DRA_HEALTH_SERVICE,
  DRA_PLUGIN_TYPE,
  DRA_SERVICE,
  loadDraApi,
  type ClaimsRequestMsg,
  type PluginInfoMsg,
  type PrepareResponseMsg,
  type RegistrationStatusMsg,
  type UnprepareResponseMsg,
  type WatchResourcesResponseMsg,
} from '../kubelet/dra-api.js';
import { DRIVER_NAME } from './names.js';

export interface PluginPaths {
  /** Where the registration socket goes (the kubelet's plugins_registry). */
  registryDir: string;
  /** The kubelet's plugins dir as this process sees it (the endpoint is bound below it). */
  pluginsDir: string;
  /** The same dir as the kubelet sees it (for the announced endpoint); default pluginsDir. */
  kubeletPluginsDir?: string;
}

export interface PluginHandlers {
  prepare(req: ClaimsRequestMsg): Promise<PrepareResponseMsg>;
  unprepare(req: ClaimsRequestMsg): Promise<UnprepareResponseMsg>;
  /** The current health of every device. */
  health(): WatchResourcesResponseMsg;
}

export function endpointPaths(p: PluginPaths): { registration: string; endpoint: string; announced: string; dataDir: string } {
  return {
    registration: join(p.registryDir, `${DRIVER_NAME}-reg.sock`),
    endpoint: join(p.pluginsDir, DRIVER_NAME, 'dra.sock'),
    announced: join(p.kubeletPluginsDir ?? p.pluginsDir, DRIVER_NAME, 'dra.sock'),
    dataDir: join(p.pluginsDir, DRIVER_NAME),
  };
}

type HealthStream = grpc.ServerWritableStream<unknown, WatchResourcesResponseMsg>;

/** Events: `registered` {ok, error}. */
export class DraPlugin {
  readonly events = new EventEmitter();
  private servers: grpc.Server[] = [];
  private readonly healthStreams = new Set<HealthStream>();
  private registered = false;
  readonly paths: ReturnType<typeof endpointPaths>;

  constructor(
    paths: PluginPaths,
    private readonly handlers: PluginHandlers,
    private readonly log: Logger,
  ) {
    this.paths = endpointPaths(paths);
  }

  isRegistered(): boolean {
    return this.registered;
  }

  /** Serve the endpoint first, then the registration socket: the kubelet dials the endpoint as soon as it registers us. */
  async start(): Promise<void> {
    const api = loadDraApi();
    const endpoint = new grpc.Server();
    endpoint.addService(api.draService, {
      NodePrepareResources: unary((req: ClaimsRequestMsg) => this.handlers.prepare(req)),
      NodeUnprepareResources: unary((req: ClaimsRequestMsg) => this.handlers.unprepare(req)),
    });
    endpoint.addService(api.healthService, { NodeWatchResources: (call: HealthStream) => this.watch(call) });
    await bind(endpoint, this.paths.endpoint);
    const registration = new grpc.Server();
    registration.addService(api.registrationService, {
      GetInfo: (_call: unknown, cb: grpc.sendUnaryData<PluginInfoMsg>) => cb(null, { type: DRA_PLUGIN_TYPE, name: DRIVER_NAME, endpoint: this.paths.announced, supported_versions: [DRA_SERVICE, DRA_HEALTH_SERVICE] }),
      NotifyRegistrationStatus: (call: grpc.ServerUnaryCall<RegistrationStatusMsg, unknown>, cb: grpc.sendUnaryData<object>) => {
        this.registered = call.request.plugin_registered;
        if (this.registered) this.log.info('registered with the kubelet', { driver: DRIVER_NAME, endpoint: this.paths.announced });
        else this.log.error('the kubelet refused the registration', { error: call.request.error });
        this.events.emit('registered', { ok: this.registered, error: call.request.error });
        cb(null, {});
      },
    });
    await bind(registration, this.paths.registration);
    this.servers = [endpoint, registration];
  }

  /** Send every watcher the current health (after a change). */
  healthChanged(): void {
    const msg = this.handlers.health();
    for (const s of this.healthStreams) s.write(msg);
  }

  private watch(call: HealthStream): void {
    this.healthStreams.add(call);
    const drop = () => this.healthStreams.delete(call);
    call.on('cancelled', drop);
    call.on('close', drop);
    call.on('error', drop);
    call.write(this.handlers.health());
  }

  /** Stop serving and remove the sockets: the kubelet deregisters the driver. */
  async stop(): Promise<void> {
    for (const s of this.healthStreams) s.end();
    this.healthStreams.clear();
    // Registration first, so the kubelet stops calling before the endpoint goes.
    for (const s of [...this.servers].reverse()) await new Promise<void>((r) => s.tryShutdown(() => r()));
    for (const p of [this.paths.registration, this.paths.endpoint]) rmSync(p, { force: true });
    this.servers = [];
    this.registered = false;
  }
}

/** A unary handler from an async function; an unexpected exception becomes INTERNAL with its message. */
function unary<Req, Res>(fn: (req: Req) => Promise<Res>) {
  return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
    fn(call.request).then(
      (res) => cb(null, res),
      (err: unknown) => cb({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) }),
    );
  };
}

async function bind(server: grpc.Server, path: string): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o750 });
  rmSync(path, { force: true }); // a socket left by an earlier run
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new Error(`cannot listen on ${path}: ${err.message}. Is the directory writable and the path shorter than 108 bytes?`)) : resolve())),
  );
}
