/**
 * The set of device plugins on a node: one per resource, kept in step with
 * the inventory, health-checked on a short timer, and re-registered when the
 * kubelet restarts (fs.watch on the plugin directory plus a periodic stat).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Gpu, Inventory } from '../../inventory/types.js';
import type { SysfsPort } from '../../sysfs/port.js';
import { jsonLogger, type Logger } from '../kube/logger.js';
import { defaultPassthroughName } from './passthrough-name.js';
import { fileIdentity, ResourcePlugin, type PluginEnv } from './plugin.js';
import { DEFAULT_PLUGIN_DIR, KUBELET_SOCKET, loadDevicePluginApi } from '../kubelet/device-plugin-api.js';
import { collectResources, validateResourceNames, type ResourceProblem, type ResourceSpec } from './resources.js';

export interface DevicePluginManagerOptions {
  /** The node's devices; update() replaces it. */
  inventory: Inventory;
  /** The sysfs port the health checks read through. */
  port: SysfsPort;
  /** Kubelet device plugin directory (default /var/lib/kubelet/device-plugins). */
  pluginDir?: string;
  /** Resource name overrides (see ResourceNaming.resourceNames). */
  resourceNames?: Record<string, string>;
  /** Domain of default resource names (default nvidia.com). */
  domain?: string;
  /** Add /dev/iommu to every allocation (iommufd enabled in the config). */
  iommufd?: boolean;
  /** Health check period (default 250 ms). */
  healthIntervalMs?: number;
  /** Stat fallback for the plugin directory watch (default 250 ms). */
  watchIntervalMs?: number;
  /** Registration retry backoff (default 200 ms doubling to 10 s) and per-attempt deadline (default 5 s). */
  registerBackoffInitialMs?: number;
  registerBackoffMaxMs?: number;
  registerTimeoutMs?: number;
  /** Re-read the inventory every rescanIntervalMs (default 10 s) when given; `vmgpu device-plugin` passes the machine's inventory(). */
  reread?: () => Inventory | Promise<Inventory>;
  rescanIntervalMs?: number;
  logger?: Logger;
  /** Default passthrough resource name (default: PCI IDs database name). */
  passthroughName?: (gpu: Gpu, domain: string) => string;
}

export interface ResourceStatus {
  resourceName: string;
  kind: 'pci' | 'mdev';
  source: ResourceSpec['source'];
  socket: string;
  registered: boolean;
  devices: { id: string; healthy: boolean; reason: string | null; numaNode: number }[];
}

/**
 * Events (for tests, benchmarks and the agent's metrics):
 * `registered` {resource, endpoint, attempts, ms}; `registration-failed` {resource, error, attempt};
 * `restarted` {resource, reason}; `health` {resource, device, healthy, reason};
 * `pushed` {resource, devices} (a ListAndWatch update was sent); `resources` {added, removed, problems};
 * `allocated` {resource, containers, devices} (an Allocate answered); `allocate-refused` {resource, reason}.
 */
export class DevicePluginManager {
  readonly events = new EventEmitter();
  readonly pluginDir: string;
  private readonly plugins = new Map<string, ResourcePlugin>();
  private readonly env: PluginEnv;
  private readonly logger: Logger;
  private readonly timers: NodeJS.Timeout[] = [];
  private watcher: FSWatcher | null = null;
  private kubeletId: string | null = null;
  private updates: Promise<void> = Promise.resolve();
  private stopped = false;
  private checkScheduled = false;
  private problems: ResourceProblem[] = [];
  private lastSweepMs = 0;

  constructor(private readonly opts: DevicePluginManagerOptions) {
    validateResourceNames(opts.resourceNames);
    this.pluginDir = opts.pluginDir ?? DEFAULT_PLUGIN_DIR;
    this.logger = opts.logger ?? jsonLogger({ base: { component: 'device-plugin' } });
    this.env = {
      pluginDir: this.pluginDir,
      port: opts.port,
      iommufd: opts.iommufd ?? false,
      logger: this.logger,
      events: this.events,
      registerTimeoutMs: opts.registerTimeoutMs ?? 5000,
      backoffInitialMs: opts.registerBackoffInitialMs ?? 200,
      backoffMaxMs: opts.registerBackoffMaxMs ?? 10_000,
    };
    this.events.setMaxListeners(100);
  }

  /** Start serving: sockets, registration, watchers, health timer. */
  async start(): Promise<void> {
    loadDevicePluginApi(); // fail now, loudly, if the proto is missing
    mkdirSync(this.pluginDir, { recursive: true, mode: 0o750 });
    if (this.env.iommufd && !this.opts.port.iommufdNodeExists()) {
      this.logger.warn('iommufd is enabled but /dev/iommu does not exist; VMs will fail to start until the iommufd module is loaded', {});
    }
    this.kubeletId = fileIdentity(join(this.pluginDir, KUBELET_SOCKET));
    await this.update(this.opts.inventory);
    try {
      this.watcher = watch(this.pluginDir, { persistent: false }, () => this.scheduleCheck());
      this.watcher.on('error', (err) => this.logger.warn('watching the plugin directory failed; relying on the periodic check', { dir: this.pluginDir, error: String(err) }));
    } catch (err) {
      this.logger.warn('cannot watch the plugin directory; relying on the periodic check', { dir: this.pluginDir, error: String(err) });
    }
    this.timers.push(setInterval(() => this.checkSockets(), this.opts.watchIntervalMs ?? 250));
    this.timers.push(setInterval(() => this.sweep(), this.opts.healthIntervalMs ?? 250));
    if (this.opts.reread) {
      const reread = this.opts.reread;
      this.timers.push(
        setInterval(() => {
          void (async () => {
            try {
              await this.update(await reread());
            } catch (err) {
              this.logger.error('re-reading the inventory failed; keeping the last one', { error: String(err) });
            }
          })();
        }, this.opts.rescanIntervalMs ?? 10_000),
      );
    }
  }

  /** Replace the inventory: add, change and remove plugins without a restart. */
  update(inventory: Inventory): Promise<void> {
    const run = async () => {
      if (this.stopped) return;
      const { resources, problems } = collectResources(inventory, {
        resourceNames: this.opts.resourceNames,
        domain: this.opts.domain,
        passthroughName: this.opts.passthroughName ?? defaultPassthroughName,
      });
      const newProblems = problems.filter((p) => !this.problems.some((q) => q.message === p.message));
      for (const p of newProblems) this.logger.warn(p.message, { code: p.code, device: p.device });
      this.problems = problems;
      const wanted = new Map(resources.map((r) => [r.resourceName, r]));
      const added: string[] = [];
      const removed: string[] = [];
      for (const [name, plugin] of this.plugins) {
        const spec = wanted.get(name);
        if (!spec || spec.kind !== plugin.kind) {
          this.plugins.delete(name);
          await plugin.stop();
          removed.push(name);
          this.logger.info('resource gone; plugin stopped', { resource: name });
        } else {
          plugin.setSpec(spec);
        }
      }
      for (const [name, spec] of wanted) {
        if (this.plugins.has(name)) continue;
        const plugin = new ResourcePlugin(spec, this.env);
        this.plugins.set(name, plugin);
        await plugin.start();
        added.push(name);
        this.logger.info('serving resource', { resource: name, devices: spec.devices.length, socket: plugin.socketPath });
      }
      if (added.length || removed.length || newProblems.length) this.events.emit('resources', { added, removed, problems });
    };
    this.updates = this.updates.then(run, run);
    return this.updates;
  }

  /** Run one health sweep now (the timer calls this); returns the number of health changes. */
  sweep(): number {
    const t0 = performance.now();
    let changes = 0;
    for (const p of this.plugins.values()) changes += p.sweep();
    this.lastSweepMs = performance.now() - t0;
    return changes;
  }

  /** Duration of the last health sweep, in ms (exposed for metrics and the benchmark). */
  lastSweepDurationMs(): number {
    return this.lastSweepMs;
  }

  plugin(resourceName: string): ResourcePlugin | undefined {
    return this.plugins.get(resourceName);
  }

  status(): ResourceStatus[] {
    return [...this.plugins.values()].sort((a, b) => a.resourceName.localeCompare(b.resourceName)).map((p) => ({
      resourceName: p.resourceName,
      kind: p.kind,
      source: p.source,
      socket: p.socketPath,
      registered: p.isRegistered(),
      devices: p.listResponse().devices.map((d) => {
        const h = p.healthOf(d.ID);
        return { id: d.ID, healthy: h?.healthy ?? false, reason: h?.reason ?? null, numaNode: d.topology?.nodes[0]?.ID ?? -1 };
      }),
    }));
  }

  /** Problems found grouping the last inventory (devices left out and why). */
  resourceProblems(): ResourceProblem[] {
    return [...this.problems];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.watcher?.close();
    await this.updates;
    await Promise.all([...this.plugins.values()].map((p) => p.stop()));
    this.plugins.clear();
  }

  // ------------------------------------------------------------------ internals

  private scheduleCheck(): void {
    if (this.checkScheduled) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.checkSockets();
    });
  }

  /** Compare kubelet.sock and each plugin socket with what we last saw. */
  private checkSockets(): void {
    if (this.stopped) return;
    const id = fileIdentity(join(this.pluginDir, KUBELET_SOCKET));
    let kubeletEvent: 'none' | 'gone' | 'appeared' | 'recreated' = 'none';
    if (id !== this.kubeletId) {
      kubeletEvent = id === null ? 'gone' : this.kubeletId === null ? 'appeared' : 'recreated';
      this.kubeletId = id;
      if (kubeletEvent === 'gone') this.logger.info('the kubelet socket disappeared; waiting for the kubelet to come back', { dir: this.pluginDir });
      else if (kubeletEvent === 'appeared') this.logger.info('the kubelet socket appeared; registering', { dir: this.pluginDir });
      else this.logger.info('the kubelet socket was recreated (kubelet restart); restarting plugins and registering again', { dir: this.pluginDir });
    }
    for (const p of this.plugins.values()) {
      // A restarting kubelet deletes every socket in the directory: serve again, then register.
      if (p.socketLost()) void p.restart('plugin socket removed');
      else if (kubeletEvent === 'recreated') void p.restart('kubelet socket recreated');
      else if (kubeletEvent === 'appeared') p.kick();
    }
  }
}

/** Start one device plugin per resource on the node. The CLI's `vmgpu device-plugin` and the agent call this. */
export async function runDevicePlugins(opts: DevicePluginManagerOptions): Promise<DevicePluginManager> {
  const m = new DevicePluginManager(opts);
  try {
    await m.start();
  } catch (err) {
    await m.stop();
    throw err;
  }
  return m;
}
