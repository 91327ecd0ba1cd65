/**
 * A minimal in-process kubelet for unit tests and the benchmark: serves
 * Registration on <dir>/kubelet.sock, and for each registration dials the
 * plugin and follows its ListAndWatch stream. (The integration test uses the
 * real Go peer built from k8s.io/kubelet instead.)
 */
import { EventEmitter } from 'node:events';
import { readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadDevicePluginApi, type DeviceMsg, type RegisterRequestMsg } from '../../../../src/serve/kubelet/device-plugin-api.js';

type PluginClient = grpc.Client & {
  ListAndWatch(req: object): grpc.ClientReadableStream<{ devices: DeviceMsg[] }>;
  Allocate(req: object, cb: (err: grpc.ServiceError | null, res: unknown) => void): void;
  GetPreferredAllocation(req: object, cb: (err: grpc.ServiceError | null, res: unknown) => void): void;
  GetDevicePluginOptions(req: object, cb: (err: grpc.ServiceError | null, res: unknown) => void): void;
};

export class TsKubelet {
  readonly events = new EventEmitter();
  readonly registrations: (RegisterRequestMsg & { at: number })[] = [];
  /** Latest ListAndWatch devices per resource. */
  readonly devices = new Map<string, DeviceMsg[]>();
  readonly clients = new Map<string, PluginClient>();
  private server: grpc.Server | null = null;
  private streams: grpc.ClientReadableStream<unknown>[] = [];
  /** Refuse the next N registrations with INVALID_ARGUMENT. */
  rejectNext = 0;
  /**
   * Answer each Register this long after taking it. The registration counts
   * when it is taken, as in the kubelet, whose handler runs to the end even
   * when the plugin gives up on the call.
   */
  registerDelayMs = 0;

  constructor(readonly dir: string) {}

  get socket(): string {
    return join(this.dir, 'kubelet.sock');
  }

  async start(): Promise<void> {
    const api = loadDevicePluginApi();
    const server = new grpc.Server();
    server.addService(api.registrationService, {
      Register: (call: grpc.ServerUnaryCall<RegisterRequestMsg, unknown>, cb: grpc.sendUnaryData<object>) => {
        const req = call.request;
        if (this.rejectNext > 0) {
          this.rejectNext--;
          this.events.emit('rejected', req);
          cb({ code: grpc.status.INVALID_ARGUMENT, details: 'test kubelet rejects this registration' });
          return;
        }
        this.registrations.push({ ...req, at: performance.now() });
        const answer = () => {
          cb(null, {});
          this.follow(req);
          this.events.emit('registered', req);
        };
        if (this.registerDelayMs > 0) setTimeout(answer, this.registerDelayMs);
        else answer();
      },
    });
    await new Promise<void>((res, rej) => server.bindAsync(`unix://${this.socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    this.server = server;
  }

  private follow(req: RegisterRequestMsg): void {
    const api = loadDevicePluginApi();
    this.clients.get(req.resource_name)?.close();
    const client = new api.DevicePluginClient(`unix://${join(this.dir, req.endpoint)}`, grpc.credentials.createInsecure()) as unknown as PluginClient;
    this.clients.set(req.resource_name, client);
    const stream = client.ListAndWatch({});
    this.streams.push(stream);
    stream.on('data', (msg: { devices: DeviceMsg[] }) => {
      this.devices.set(req.resource_name, msg.devices);
      this.events.emit('devices', req.resource_name, msg.devices);
    });
    stream.on('error', () => {});
  }

  /** Wait for an event whose arguments satisfy `pred`. */
  waitFor<T extends unknown[]>(event: string, pred: (...args: T) => boolean, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.events.off(event, on);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`));
      }, timeoutMs);
      const on = (...args: unknown[]) => {
        if (pred(...(args as T))) {
          clearTimeout(t);
          this.events.off(event, on);
          resolve(args as T);
        }
      };
      this.events.on(event, on);
    });
  }

  /** Stop serving and close every client. */
  async stop(): Promise<void> {
    for (const s of this.streams) s.cancel();
    this.streams = [];
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((res) => server.tryShutdown(() => res()));
  }

  /** What a restarted kubelet does: stop, delete every socket in the directory, serve again. */
  async restart(): Promise<void> {
    await this.stop();
    for (const f of readdirSync(this.dir)) {
      if (f.endsWith('.sock')) {
        try {
          unlinkSync(join(this.dir, f));
        } catch {
          /* gone */
        }
      }
    }
    await this.start();
  }
}
