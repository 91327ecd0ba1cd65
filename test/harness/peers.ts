/**
 * Drives the Go test peers in test/peers: a fake kubelet device manager (for
 * device plugin tests) and a fake pod-resources server (for agent tests).
 * Both use the kubelet's own generated gRPC code, so what they report is what a
 * real kubelet would have decoded. The line protocol is in test/peers/README.md.
 *
 * The binaries are built (or reused from ~/.cache/vmgpu) by
 * scripts/build-peers.mjs; the first call here runs it, and throws with its
 * message if Go or the module downloads are missing.
 *
 * Every peer started here is killed when this process exits, and the peers
 * exit on their own when their stdin closes, so no peer outlives a test run.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------
// Message shapes, as the kubelet's generated code decoded them. Field names are
// the .proto names; every field is present (zero values included); an unset
// message field is null.

export interface NUMANode {
  ID: number;
}
export interface TopologyInfo {
  nodes: NUMANode[];
}
export interface Device {
  ID: string;
  health: string;
  topology: TopologyInfo | null;
}
export interface DevicePluginOptions {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}
export interface Mount {
  container_path: string;
  host_path: string;
  read_only: boolean;
}
export interface DeviceSpec {
  container_path: string;
  host_path: string;
  permissions: string;
}
export interface CDIDevice {
  name: string;
}
export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: Mount[];
  devices: DeviceSpec[];
  annotations: Record<string, string>;
  cdi_devices: CDIDevice[];
}
export interface AllocateResponse {
  container_responses: ContainerAllocateResponse[];
}
export interface PreferredAllocationResponse {
  container_responses: { deviceIDs: string[] }[];
}
/** One container's request for GetPreferredAllocation. */
export interface PreferredRequest {
  available: string[];
  mustInclude?: string[];
  size: number;
}

/** What the fake kubelet reports on its own (not in answer to a command). */
export type KubeletEvent =
  | { event: 'listening'; socket: string }
  | { event: 'registered'; resourceName: string; endpoint: string; version: string; options: DevicePluginOptions | null }
  | {
      event: 'rejected';
      resourceName: string;
      endpoint: string;
      version: string;
      options: DevicePluginOptions | null;
      message: string;
    }
  | { event: 'options'; resourceName: string; endpoint: string; options: DevicePluginOptions }
  | { event: 'plugin-error'; resourceName: string; endpoint: string; call: string; code: string; message: string }
  | { event: 'devices'; resourceName: string; endpoint: string; devices: Device[] }
  | {
      event: 'stream-closed';
      resourceName: string;
      endpoint: string;
      /** 'replaced' | 'kubelet-restart' | 'quit' | 'plugin-ended-stream' | 'error' */
      reason: string;
      code?: string;
      message?: string;
    }
  | { event: 'error'; code: string; message: string }
  | { event: 'quit' }
  | { event: 'internal-error'; message: string };

export type KubeletEventName = KubeletEvent['event'];
export type KubeletEventOf<K extends KubeletEventName> = Extract<KubeletEvent, { event: K }>;

/** A plugin as the fake kubelet currently holds it (the `state` command). */
export interface RegisteredPlugin {
  resourceName: string;
  endpoint: string;
  version: string;
  options: DevicePluginOptions | null;
  streaming: boolean;
  devices: Device[];
}

/** A command the peer answered with {"event":"error"}; `code` is a gRPC code name or NotRegistered/BadCommand. */
export class PeerCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PeerCallError';
  }
}

export interface FakeKubelet {
  /** The directory standing for /var/lib/kubelet/device-plugins. */
  readonly dir: string;
  /** <dir>/kubelet.sock */
  readonly socketPath: string;
  /** Every event seen so far, oldest first. */
  readonly events: readonly KubeletEvent[];
  /** Index of the next event; pass it as `from` to wait only for later events. */
  mark(): number;
  /** First event (at index >= from) that matches; rejects after timeoutMs listing the last events seen. */
  waitForEvent(predicate: (e: KubeletEvent) => boolean, timeoutMs?: number, from?: number): Promise<KubeletEvent>;
  /** Typed form of waitForEvent for one event name. */
  waitFor<K extends KubeletEventName>(
    event: K,
    filter?: (e: KubeletEventOf<K>) => boolean,
    opts?: { timeoutMs?: number; from?: number },
  ): Promise<KubeletEventOf<K>>;
  /** Allocate on the plugin registered for resourceName: one array of device IDs per container. */
  allocate(resourceName: string, containers: string[][]): Promise<AllocateResponse>;
  /** GetPreferredAllocation, one entry per container. */
  preferred(resourceName: string, containers: PreferredRequest[]): Promise<PreferredAllocationResponse>;
  /** GetDevicePluginOptions. */
  options(resourceName: string): Promise<DevicePluginOptions>;
  /** PreStartContainer with these device IDs. */
  prestart(resourceName: string, devices: string[]): Promise<void>;
  /** The plugins the kubelet holds now, with the last device list of each. */
  state(): Promise<RegisteredPlugin[]>;
  /**
   * Simulate a kubelet restart: drop every plugin connection, delete every
   * socket in dir, serve kubelet.sock again. Resolves once it serves again.
   * rejectFirst re-arms registration rejection for the new kubelet.
   */
  restart(opts?: { rejectFirst?: number }): Promise<void>;
  /** Stop the peer (idempotent). */
  stop(): Promise<void>;
}

export interface PodDevices {
  resourceName: string;
  deviceIds: string[];
  numaNodes?: number[];
}
export interface PodSpec {
  name: string;
  namespace: string;
  containers: { name: string; devices: PodDevices[] }[];
}
export type PodResourcesEvent =
  | { event: 'listening'; socket: string }
  | { event: 'call'; method: 'List' | 'Get' | 'GetAllocatableResources'; podName?: string; podNamespace?: string; error?: string }
  | { event: 'quit' }
  | { event: 'internal-error'; message: string };

export interface FakePodResources {
  readonly socketPath: string;
  /** The JSON file the server re-reads on every call. */
  readonly podsFile: string;
  /** Every event seen so far (one 'call' per RPC served). */
  readonly events: readonly PodResourcesEvent[];
  mark(): number;
  waitForEvent(predicate: (e: PodResourcesEvent) => boolean, timeoutMs?: number, from?: number): Promise<PodResourcesEvent>;
  /** Replace the pods reported from the next call on (atomic file replace). */
  setPods(pods: PodSpec[]): void;
  /** Replace what GetAllocatableResources reports. */
  setAllocatable(devices: PodDevices[]): void;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Building and locating the binaries

let binDir: string | undefined;

/** Directory holding the built peers; builds them on first use. */
function peersBinDir(): string {
  if (binDir !== undefined) return binDir;
  const script = join(repoRoot, 'scripts', 'build-peers.mjs');
  const r = spawnSync(process.execPath, [script, '--print-dir'], { encoding: 'utf8' });
  const dir = r.stdout?.trim();
  if (r.error || r.status !== 0 || !dir) {
    throw new Error(
      `the Go test peers are not available: \`node scripts/build-peers.mjs\` failed ` +
        `(${r.error ? r.error.message : `exit ${String(r.status)}`}):\n${r.stderr ?? ''}`,
    );
  }
  binDir = dir;
  return dir;
}

// ---------------------------------------------------------------------------
// Process handling shared by both peers

const live = new Set<ChildProcessWithoutNullStreams>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
}
function track(child: ChildProcessWithoutNullStreams): void {
  installExitHook();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

type Waiter<E> = { predicate: (e: E) => boolean; from: number; resolve: (e: E) => void; reject: (err: Error) => void };

/** Runs one peer: parses its JSON lines, keeps an event log, routes replies to commands. */
class PeerProcess<E extends { event: string }> {
  readonly events: E[] = [];
  private readonly stderrTail: string[] = [];
  private readonly waiters = new Set<Waiter<E>>();
  private readonly pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    track(child);
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    createInterface({ input: child.stderr }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail.shift();
      if (process.env.VMGPU_PEER_LOG) process.stderr.write(`[${name}] ${line}\n`);
    });
    this.exited = new Promise((resolveExit) => {
      const gone = (info: string) => {
        if (this.exitInfo !== undefined) return;
        this.exitInfo = info;
        const err = new Error(`${name} ${info}${this.stderrSummary()}`);
        for (const w of this.waiters) w.reject(err);
        this.waiters.clear();
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        resolveExit();
      };
      child.once('exit', (code, signal) => gone(signal ? `killed by ${signal}` : `exited with code ${String(code)}`));
      child.once('error', (err) => gone(`could not be started: ${err.message}`));
    });
    // A peer that dies is reported to waiters; the stream errors themselves are not interesting.
    child.stdin.on('error', () => undefined);
  }

  private stderrSummary(): string {
    return this.stderrTail.length ? `; its stderr ends with:\n  ${this.stderrTail.join('\n  ')}` : '';
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.stderrTail.push(`(stdout, not JSON) ${line}`);
      return;
    }
    if (typeof msg.id === 'number' && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.event === 'error') p?.reject(new PeerCallError(String(msg.code), `${this.name}: ${String(msg.message)} (${String(msg.code)})`));
      else p?.resolve(msg);
      return;
    }
    const ev = msg as E;
    const index = this.events.length;
    this.events.push(ev);
    for (const w of this.waiters) {
      if (index >= w.from && w.predicate(ev)) {
        this.waiters.delete(w);
        w.resolve(ev);
      }
    }
  }

  mark(): number {
    return this.events.length;
  }

  waitForEvent(predicate: (e: E) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS, from = 0): Promise<E> {
    const found = this.events.slice(from).find(predicate);
    if (found) return Promise.resolve(found);
    if (this.exitInfo) return Promise.reject(new Error(`${this.name} ${this.exitInfo}${this.stderrSummary()}`));
    return new Promise<E>((resolvePromise, rejectPromise) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const last = this.events.slice(-15).map((e, i, a) => `  #${this.events.length - a.length + i} ${JSON.stringify(e)}`);
        rejectPromise(
          new Error(
            `${this.name}: no matching event within ${timeoutMs} ms (looking from event #${from}: ${predicate.toString()}).\n` +
              `Last events seen (${this.events.length} in all):\n${last.join('\n') || '  (none)'}${this.stderrSummary()}`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter<E> = {
        predicate,
        from,
        resolve: (e) => {
          clearTimeout(timer);
          resolvePromise(e);
        },
        reject: (err) => {
          clearTimeout(timer);
          rejectPromise(err);
        },
      };
      this.waiters.add(waiter);
    });
  }

  command(cmd: Record<string, unknown>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    if (this.exitInfo) return Promise.reject(new Error(`${this.name} ${this.exitInfo}${this.stderrSummary()}`));
    const id = this.nextId++;
    return new Promise((resolvePromise, rejectPromise) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        rejectPromise(new Error(`${this.name}: no answer to ${JSON.stringify(cmd)} within ${timeoutMs} ms${this.stderrSummary()}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolvePromise(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          rejectPromise(e);
        },
      });
      this.child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.exitInfo === undefined) {
      this.child.stdin.write(`${JSON.stringify({ cmd: 'quit' })}\n`);
      this.child.stdin.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** Resolves when the peer reports it is listening; rejects if it exits first. */
  async started(): Promise<void> {
    try {
      await this.waitForEvent((e) => e.event === 'listening', DEFAULT_TIMEOUT_MS);
    } catch (err) {
      this.child.kill('SIGKILL');
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------
// Fake kubelet

/**
 * Start the fake kubelet serving Registration on <dir>/kubelet.sock. As the
 * kubelet does, it first deletes every socket already in dir.
 */
export async function startFakeKubelet(
  dir: string,
  opts: { rejectFirst?: number; callTimeoutMs?: number } = {},
): Promise<FakeKubelet> {
  const args = ['-dir', dir, '-reject-first', String(opts.rejectFirst ?? 0)];
  if (opts.callTimeoutMs !== undefined) args.push('-call-timeout', `${opts.callTimeoutMs}ms`);
  const child = spawn(join(peersBinDir(), 'kubelet'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const peer = new PeerProcess<KubeletEvent>('fake kubelet', child);
  await peer.started();

  const call = async (cmd: Record<string, unknown>) => peer.command(cmd);
  return {
    dir,
    socketPath: join(dir, 'kubelet.sock'),
    events: peer.events,
    mark: () => peer.mark(),
    waitForEvent: (predicate, timeoutMs, from) => peer.waitForEvent(predicate, timeoutMs, from),
    waitFor: <K extends KubeletEventName>(
      event: K,
      filter?: (e: KubeletEventOf<K>) => boolean,
      o: { timeoutMs?: number; from?: number } = {},
    ) =>
      peer.waitForEvent(
        (e) => e.event === event && (filter ? filter(e as KubeletEventOf<K>) : true),
        o.timeoutMs,
        o.from,
      ) as Promise<KubeletEventOf<K>>,
    allocate: async (resourceName, containers) =>
      (await call({ cmd: 'allocate', resourceName, containers })).response as AllocateResponse,
    preferred: async (resourceName, containers) =>
      (await call({ cmd: 'preferred', resourceName, containers })).response as PreferredAllocationResponse,
    options: async (resourceName) => (await call({ cmd: 'options', resourceName })).options as DevicePluginOptions,
    prestart: async (resourceName, devices) => {
      await call({ cmd: 'prestart', resourceName, devices });
    },
    state: async () => (await call({ cmd: 'state' })).plugins as RegisteredPlugin[],
    restart: async (o = {}) => {
      await call(o.rejectFirst === undefined ? { cmd: 'restart' } : { cmd: 'restart', rejectFirst: o.rejectFirst });
    },
    stop: () => peer.stop(),
  };
}

// ---------------------------------------------------------------------------
// Fake pod-resources server

/** Start the fake pod-resources server on socketPath (its directory must exist). */
export async function startPodResources(
  socketPath: string,
  pods: PodSpec[],
  opts: { allocatable?: PodDevices[] } = {},
): Promise<FakePodResources> {
  const stateDir = mkdtempSync(join(tmpdir(), 'vmgpu-podresources-'));
  installExitHook();
  tempDirs.add(stateDir);
  const removeStateDir = () => {
    rmSync(stateDir, { recursive: true, force: true });
    tempDirs.delete(stateDir);
  };
  const podsFile = join(stateDir, 'pods.json');
  let state = { pods, allocatable: opts.allocatable ?? [] };
  let seq = 0;
  const write = () => {
    const tmp = join(stateDir, `.pods.json.${seq++}`);
    writeFileSync(tmp, JSON.stringify(state));
    renameSync(tmp, podsFile);
  };
  write();
  const child = spawn(join(peersBinDir(), 'podresources'), ['-socket', socketPath, '-pods', podsFile], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const peer = new PeerProcess<PodResourcesEvent>('fake pod-resources', child);
  try {
    await peer.started();
  } catch (err) {
    removeStateDir();
    throw err;
  }
  return {
    socketPath,
    podsFile,
    events: peer.events,
    mark: () => peer.mark(),
    waitForEvent: (predicate, timeoutMs, from) => peer.waitForEvent(predicate, timeoutMs, from),
    setPods: (p) => {
      state = { ...state, pods: p };
      write();
    },
    setAllocatable: (devices) => {
      state = { ...state, allocatable: devices };
      write();
    },
    stop: async () => {
      await peer.stop();
      removeStateDir();
    },
  };
}

// ---------------------------------------------------------------------------
// API conformance: our .proto files against the kubelet's generated code

/** Summary of the API compiled into a peer (from the k8s.io/kubelet module). */
export interface ApiSummary {
  package: string;
  messages: Record<string, string[]>;
  services: Record<string, string[]>;
}

/** The kubelet's own definition of the device plugin or pod-resources API, as compiled into the peers. */
export function describeUpstreamApi(api: 'deviceplugin' | 'podresources'): ApiSummary {
  const bin = join(peersBinDir(), api === 'deviceplugin' ? 'kubelet' : 'podresources');
  const r = spawnSync(bin, ['-describe'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`${bin} -describe failed: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout) as ApiSummary;
}

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
  proto3Optional: boolean;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  oneofDecl: { name: string }[];
  options: { mapEntry?: boolean } | null;
}

/** The same summary for one of our .proto files (path relative to the repository root). */
export function describeProtoFile(relPath: string): ApiSummary {
  const defs = protoLoader.loadSync(join(repoRoot, relPath), { keepCase: true });
  const summary: ApiSummary = { package: '', messages: {}, services: {} };
  const scalar = (t: string) => t.replace(/^TYPE_/, '').toLowerCase();
  for (const [fullName, def] of Object.entries(defs)) {
    const dot = fullName.lastIndexOf('.');
    summary.package = fullName.slice(0, dot);
    const name = fullName.slice(dot + 1);
    if ('format' in def && typeof def.format === 'string' && def.format.includes('DescriptorProto')) {
      const d = def.type as MessageDescriptor;
      const typeOf = (f: FieldDescriptor): string => {
        const single = (x: FieldDescriptor) => (x.type === 'TYPE_MESSAGE' || x.type === 'TYPE_ENUM' ? x.typeName.split('.').pop() ?? '' : scalar(x.type));
        const entry = d.nestedType.find((n) => n.name === f.typeName && n.options?.mapEntry);
        if (f.type === 'TYPE_MESSAGE' && entry) {
          const [k, v] = [entry.field.find((x) => x.number === 1), entry.field.find((x) => x.number === 2)];
          return `map<${k ? single(k) : '?'},${v ? single(v) : '?'}>`;
        }
        if (f.label === 'LABEL_REPEATED') return `repeated ${single(f)}`;
        // protobufjs marks a proto3 `optional` field with a synthetic oneof named _<field>.
        if (f.proto3Optional || d.oneofDecl.some((o) => o.name === `_${f.name}`)) return `optional ${single(f)}`;
        return single(f);
      };
      summary.messages[name] = [...d.field].sort((a, b) => a.number - b.number).map((f) => `${f.number} ${f.name} ${typeOf(f)}`);
    } else if (!('format' in def)) {
      const methods = def as protoLoader.ServiceDefinition;
      summary.services[name] = Object.entries(methods).map(([method, m]) => {
        const req = (m.requestType.type as MessageDescriptor).name;
        const res = (m.responseType.type as MessageDescriptor).name;
        return `${method}(${m.requestStream ? 'stream ' : ''}${req}) ${m.responseStream ? 'stream ' : ''}${res}`;
      });
    }
  }
  return summary;
}
