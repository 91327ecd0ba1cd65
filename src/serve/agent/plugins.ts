/**
 * The agent's device plugins: started with the resource names the config
 * gives, kept in step with each new inventory, restarted when the names
 * change; and, from what they serve, the permittedHostDevices entries KubeVirt
 * needs and the allocation gauge. They serve neither what the DRA driver has
 * nor anything on a `container` node (managed.ts).
 */
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import { DevicePluginManager, type DevicePluginManagerOptions } from '../deviceplugin/manager.js';
import { exceptDra, type DraHooks } from '../dra/modes.js';
import { withDraPermitted } from '../dra/permitted.js';
import { passthroughNamer } from '../deviceplugin/passthrough-name.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../kube/logger.js';
import type { PodResourcesClient } from '../kubelet/pod-resources.js';
import { permittedHostDevices } from '../kubevirt/permitted.js';
import type { ResourceNames } from './desired.js';
import { servedInventory } from './managed.js';
import type { AgentMetrics } from './metrics.js';
import type { WorkloadMode } from './state.js';

export interface AgentPluginsOptions {
  /** False: the agent runs without device plugins (another process serves them). */
  enabled: boolean;
  machine: Machine;
  pluginDir: string;
  iommufd: boolean;
  log: Logger;
  metrics: AgentMetrics;
  managerOptions?: Partial<DevicePluginManagerOptions> | undefined;
  /** The DRA driver in this process: its GPUs and prepared devices are not served here; its extended resources join the annotation. */
  dra: DraHooks | null;
  /** The workload the node is laid out for. */
  workload(): WorkloadMode | null;
}

/** What the validator checks of each plugin; null when the agent serves none. */
export type PluginView = { resourceName: string; registered: boolean; devices: number; healthy: number }[] | null;

/** Equal for the same overrides in any order. */
const keyOf = (names: ResourceNames): string => JSON.stringify(Object.entries(names).sort());

export class AgentPlugins {
  private manager: DevicePluginManager | null = null;
  /** The names the running manager was started with. */
  private served: ResourceNames = {};
  /** Every resource ever served: pods holding one of these hold our devices, even after a rename. */
  readonly everServed = new Set<string>();

  constructor(private readonly opts: AgentPluginsOptions) {}

  running(): DevicePluginManager | null {
    return this.manager;
  }

  /** Ready for the readiness probe: serving, or not asked to serve. */
  ready(): boolean {
    return !this.opts.enabled || this.manager !== null;
  }

  /** Serve what `inv` offers under `names`. A failure is logged and counted, never thrown: the plugins keep what they had. */
  async sync(node: Inventory, names: ResourceNames): Promise<void> {
    if (!this.opts.enabled) return;
    const dra = this.opts.dra;
    const served = servedInventory(node, this.opts.workload());
    const inv = dra ? exceptDra(served, dra.gpus(), dra.held()) : served;
    try {
      if (this.manager && keyOf(names) !== keyOf(this.served)) {
        this.opts.log.info('resource names changed; restarting the device plugins', {});
        await this.manager.stop();
        this.manager = null;
      }
      if (this.manager) await this.manager.update(inv);
      else this.manager = await this.start(inv, names);
      for (const s of this.manager.status()) this.everServed.add(s.resourceName);
    } catch (err) {
      this.opts.metrics.errors.inc({ kind: 'device-plugin' });
      this.opts.log.error('device plugins could not be updated', { error: messageOf(err) });
    }
  }

  private async start(inv: Inventory, names: ResourceNames): Promise<DevicePluginManager> {
    const { machine, metrics } = this.opts;
    const manager = new DevicePluginManager({
      inventory: inv,
      port: machine.port,
      pluginDir: this.opts.pluginDir,
      resourceNames: names,
      iommufd: this.opts.iommufd,
      passthroughName: passthroughNamer(machine.pciIds),
      logger: this.opts.log,
      ...this.opts.managerOptions,
    });
    manager.events.on('allocated', (e: { resource: string }) => metrics.allocateCalls.inc({ resource: e.resource, result: 'ok' }));
    manager.events.on('allocate-refused', (e: { resource: string; reason: string }) => metrics.allocateCalls.inc({ resource: e.resource, result: e.reason }));
    await manager.start();
    this.served = names;
    return manager;
  }

  async stop(): Promise<void> {
    await this.manager?.stop();
  }

  view(): PluginView {
    if (this.manager) return this.manager.status().map((p) => ({ resourceName: p.resourceName, registered: p.registered, devices: p.devices.length, healthy: p.devices.filter((d) => d.healthy).length }));
    return this.opts.enabled ? [] : null;
  }

  /** The `vmgpu.io/permitted-host-devices` annotation: KubeVirt's entries for what the plugins and the DRA driver serve; null before the first inventory. */
  permittedAnnotation(inv: Inventory | null): string | null {
    const own = inv ? this.ownPermitted(servedInventory(inv, this.opts.workload())) : null;
    return this.opts.dra ? withDraPermitted(own, this.opts.dra.permitted()) : own;
  }

  private ownPermitted(inv: Inventory): string {
    try {
      return JSON.stringify(permittedHostDevices(inv, { resourceNames: this.served, pciIds: this.opts.machine.pciIds }));
    } catch (err) {
      this.opts.log.warn('cannot compute permittedHostDevices', { error: messageOf(err) });
      return JSON.stringify({ pciHostDevices: [], mediatedDevices: [] });
    }
  }

  /** Set the allocation gauge from the kubelet: devices of each resource we serve that pods hold. */
  async refreshAllocations(podResources: PodResourcesClient): Promise<void> {
    if (!podResources.available()) return;
    try {
      const assignments = await podResources.list();
      const counts = new Map<string, number>();
      for (const a of assignments) if (this.everServed.has(a.resourceName)) counts.set(a.resourceName, (counts.get(a.resourceName) ?? 0) + 1);
      this.opts.metrics.allocations.reset();
      for (const r of this.everServed) this.opts.metrics.allocations.set({ resource: r }, counts.get(r) ?? 0);
    } catch (err) {
      this.opts.metrics.errors.inc({ kind: 'pod-resources' });
      this.opts.log.debug('pod-resources List for metrics failed', { error: messageOf(err) });
    }
  }
}
