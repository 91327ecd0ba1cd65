/**
 * `vmgpu agent`: the node agent. One reconcile worker turns "what the labels
 * and the config file ask for" into the node's layout through the config
 * engine (plan -> apply), keeps the device plugins in step, and reports on
 * its own Node (state label, status annotation, Events).
 *
 * Triggers: a change of the Node's config/workload labels (list + watch of
 * our own Node only), a change of the config file, a retry after a failure
 * (exponential backoff with jitter), and -- only while a change is pending
 * on devices in use -- a local pod-resources check. Nothing polls the API
 * server at steady state.
 *
 * Boot: the last applied config is kept in the state dir and re-applied
 * before the API server is contacted; the device plugins then serve it even
 * while the API server is unreachable.
 */
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import { applyPlan, type ApplyResult } from '../../apply/apply.js';
import type { Inventory } from '../../inventory/types.js';
import type { Plan } from '../../plan/types.js';
import { isConfigError } from '../../spec/config.js';
import type { Machine } from '../../machine/machine.js';
import { planOn } from '../../machine/plan-on.js';
import { DevicePluginManager, type DevicePluginManagerOptions } from '../deviceplugin/manager.js';
import { jsonLogger, type Logger } from '../deviceplugin/logger.js';
import { passthroughNamer } from '../deviceplugin/passthrough-name.js';
import { permittedHostDevices } from '../kubevirt/permitted.js';
import { backoffDelay } from './backoff.js';
import { FileConfigSource, ConfigMapSource, type ConfigSource, type ConfigSnapshot } from './config-source.js';
import {
  ANNOTATION_PERMITTED,
  ANNOTATION_STATUS,
  ANNOTATION_VALIDATION,
  LABEL_STATE,
  LABEL_VALIDATION,
  desiredFromLabels,
  resolveDesired,
  resourceNamesOf,
} from './desired.js';
import type { V1Node } from '@kubernetes/client-node';
import { Informer } from './informer.js';
import { describeApiError, type Kube } from './kube.js';
import { createMetrics, serveMetrics, type AgentMetrics } from './metrics.js';
import { patchNodeMetadata, postNodeEvent, type EventType } from './node-api.js';
import { inUseFromAssignments, PodResourcesClient } from './podresources.js';
import { desiredKey, StateStore, type AppliedState, type Desired } from './state.js';
import { validateNode, type ValidationReport } from './validator.js';

export type ConfigState = 'pending' | 'success' | 'failed';

export interface AgentStatus {
  config: string | null;
  state: ConfigState;
  reason: string;
  gpus: { gpu: string; model: string; mode: string; want: Record<string, number>; kept: number }[];
  blocked: { device: string; change: string; reason: string }[];
  errors: string[];
  appliedAt: string | null;
  /** The desired-state key (workload, config name, file content) this status answers. */
  observedGeneration: string;
}

export interface AgentOptions {
  nodeName: string;
  machine: Machine;
  /** Null: run without an API server (boot re-apply and device plugins only). */
  kube: Kube | null;
  configFile?: string | null;
  configMap?: { namespace: string; name: string } | null;
  defaultConfig?: string;
  stateDir: string;
  devicePluginDir: string;
  podResourcesSocket: string;
  iommufd?: boolean;
  metricsAddr?: string | null;
  logger?: Logger;
  /** 0 disables the periodic validator. */
  validateIntervalMs?: number;
  /** How often to re-check pod-resources while a change is pending (default 2 s). */
  pendingRecheckMs?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Run the device plugins in-process (default true). */
  devicePlugins?: boolean;
  devicePluginOptions?: Partial<DevicePluginManagerOptions>;
  eventNamespace?: string;
  /** Backoff of the node watch (tests shorten it). */
  watchBackoffInitialMs?: number;
  watchBackoffMaxMs?: number;
  metrics?: AgentMetrics;
}

/**
 * Events: `reconciled` {result, state, key, writes, ms, trigger}; `published` {state};
 * `validated` ValidationReport; `api-error` {error}.
 */
export class Agent {
  readonly events = new EventEmitter();
  readonly metrics: AgentMetrics;
  readonly store: StateStore;
  private readonly log: Logger;
  private readonly podResources: PodResourcesClient;
  private configSource: ConfigSource | null = null;
  private informer: Informer<V1Node> | null = null;
  private dpm: DevicePluginManager | null = null;
  private dpNamesKey = '';
  private readonly everServed = new Set<string>();
  private metricsServer: Server | null = null;
  private node: V1Node | null = null;
  private applied: AppliedState | null = null;
  /** Key of the desired state the last reconcile handled (success, pending or failed). */
  private handledKey: string | null = null;
  private status: AgentStatus | null = null;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private pendingTimer: NodeJS.Timeout | null = null;
  private validateTimer: NodeJS.Timeout | null = null;
  private publishTimer: NodeJS.Timeout | null = null;
  private publishFailures = 0;
  private dirty = false;
  private force = false;
  private trigger = 'start';
  private triggerAt = 0;
  private worker: Promise<void> | null = null;
  private stopped = false;
  private bootDone = false;
  private lastInventory: Inventory | null = null;
  private lastInUse = new Map<string, string>();
  private lastValidation: ValidationReport | null = null;
  private blockedIds: string[] = [];
  private lastPendingEvent = '';

  constructor(private readonly o: AgentOptions) {
    this.log = o.logger ?? jsonLogger({ base: { component: 'agent', node: o.nodeName }, write: (l) => process.stdout.write(l) });
    this.metrics = o.metrics ?? createMetrics();
    this.store = new StateStore(o.stateDir);
    this.podResources = new PodResourcesClient(o.podResourcesSocket);
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    if (this.o.metricsAddr) {
      this.metricsServer = await serveMetrics(this.o.metricsAddr, this.metrics, {
        healthy: () => ({ ok: !this.stopped, detail: this.stopped ? 'stopping' : 'running' }),
        ready: () => {
          const s = this.status?.state ?? (this.applied ? 'success' : 'pending');
          const ok = this.bootDone && (this.o.devicePlugins === false || this.dpm !== null) && s !== 'failed';
          return { ok, detail: `boot ${this.bootDone ? 'done' : 'running'}, device plugins ${this.dpm ? 'serving' : 'not started'}, config state ${s}` };
        },
        beforeScrape: () => this.refreshAllocations(),
      });
    }
    // 1. Boot: re-apply the last applied config before the API server is involved.
    try {
      this.applied = this.store.load();
    } catch (err) {
      this.log.error((err as Error).message, {});
      this.metrics.errors.inc({ kind: 'state' });
    }
    let inv: Inventory;
    let resourceNames: Record<string, string> = {};
    if (this.applied) {
      const r = await this.applyDesired(this.applied, 'boot');
      inv = r.inventory ?? (await this.o.machine.inventory());
      resourceNames = r.resourceNames;
      this.log.info('boot: re-applied the last applied config', { config: this.applied.configName, workload: this.applied.workload, writes: r.result?.writes ?? 0, blocked: r.plan?.blocked.length ?? 0, error: r.error ?? null });
    } else {
      inv = await this.o.machine.inventory();
      this.log.info('boot: no applied config recorded yet; waiting for the node labels', { stateFile: this.store.file });
    }
    this.lastInventory = inv;
    // 2. Device plugins serve whatever the node has now.
    if (this.o.devicePlugins !== false) await this.syncDevicePlugins(inv, resourceNames);
    this.bootDone = true;
    // 3. Config source and our Node.
    this.configSource = this.o.configMap && this.o.kube ? new ConfigMapSource(this.o.kube, this.o.configMap, this.log) : this.o.configFile ? new FileConfigSource(this.o.configFile, this.log) : null;
    this.configSource?.start(() => this.onInputsChanged('config'));
    if (this.o.kube) {
      const kube = this.o.kube;
      const fieldSelector = `metadata.name=${this.o.nodeName}`;
      this.informer = new Informer<V1Node>(kube, {
        path: '/api/v1/nodes',
        list: () => kube.core.listNode({ fieldSelector }),
        fieldSelector,
        onChange: (nodes) => {
          this.node = nodes.find((n) => n.metadata?.name === this.o.nodeName) ?? null;
          this.onInputsChanged('node');
        },
        onError: (err, attempt) => {
          this.metrics.errors.inc({ kind: 'api' });
          this.events.emit('api-error', { error: err.message });
          this.log.warn('the API server is not reachable; device plugins keep serving, retrying', { attempt, error: err.message });
        },
        backoffInitialMs: this.o.watchBackoffInitialMs ?? 500,
        backoffMaxMs: this.o.watchBackoffMaxMs ?? 30_000,
      });
      this.informer.start();
    }
    const vi = this.o.validateIntervalMs ?? 5 * 60_000;
    if (vi > 0) {
      this.validateTimer = setInterval(() => void this.validate().catch(() => {}), vi);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.retryTimer, this.pendingTimer, this.publishTimer]) if (t) clearTimeout(t);
    if (this.validateTimer) clearInterval(this.validateTimer);
    await this.informer?.stop();
    await this.configSource?.stop();
    await this.worker;
    await this.dpm?.stop();
    this.podResources.close();
    if (this.metricsServer) await new Promise<void>((r) => this.metricsServer!.close(() => r()));
  }

  /** The status last computed (what is or will be on the Node). */
  currentStatus(): AgentStatus | null {
    return this.status;
  }

  devicePluginManager(): DevicePluginManager | null {
    return this.dpm;
  }

  /** Resolves when the reconcile worker is idle. */
  async idle(): Promise<void> {
    while (this.worker) await this.worker;
  }

  // ------------------------------------------------------------------ triggers

  private desired(): ReturnType<typeof desiredFromLabels> | null {
    if (!this.node) return null;
    const cfg = this.configSource?.current() ?? null;
    return desiredFromLabels(this.node.metadata?.labels ?? {}, cfg ? { text: cfg.text, fileName: cfg.fileName } : null, this.o.defaultConfig, this.configSource?.problem());
  }

  private keyOf(d: ReturnType<typeof desiredFromLabels> | null): string | null {
    if (!d) return null;
    return d.ok ? desiredKey(d.desired) : `invalid:${d.reason}`;
  }

  private onInputsChanged(source: 'node' | 'config'): void {
    if (this.stopped || !this.bootDone) return;
    const key = this.keyOf(this.desired());
    if (key === null) return;
    if (key !== this.handledKey) {
      this.failures = 0;
      this.kick(source, false);
    } else if (source === 'node' && this.status) {
      // Our own patch coming back, or a kubelet heartbeat: republish only if our keys were changed by someone else.
      if (this.nodeDiffers()) this.schedulePublish(0);
    }
  }

  private kick(trigger: string, force: boolean): void {
    if (this.stopped) return;
    this.dirty = true;
    this.force ||= force;
    if (!this.worker) {
      this.trigger = trigger;
      this.triggerAt = performance.now();
    }
    this.worker ??= this.work().finally(() => {
      this.worker = null;
      if (this.dirty && !this.stopped) this.kick(this.trigger, false);
    });
  }

  private async work(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      const force = this.force;
      this.force = false;
      try {
        await this.reconcile(force);
      } catch (err) {
        this.metrics.errors.inc({ kind: 'internal' });
        this.log.error('reconcile crashed; retrying', { error: (err as Error).stack ?? String(err) });
        this.scheduleRetry();
      }
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.failures++;
    const ms = backoffDelay(this.failures, this.o.retryInitialMs ?? 1000, this.o.retryMaxMs ?? 5 * 60_000);
    this.log.info('retrying after a failure', { inMs: ms, attempt: this.failures });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick('retry', true);
    }, ms);
  }

  private schedulePendingRecheck(): void {
    if (this.pendingTimer || this.stopped) return;
    this.pendingTimer = setTimeout(() => {
      this.pendingTimer = null;
      void this.recheckPending();
    }, this.o.pendingRecheckMs ?? 2000);
  }

  /** While pending: ask the kubelet (locally) whether the blocking devices were released. */
  private async recheckPending(): Promise<void> {
    if (this.stopped || this.status?.state !== 'pending') return;
    try {
      const inUse = await this.podInUse(this.lastInventory);
      const machineInUse = this.lastInventory ? this.o.machine.inUse(this.lastInventory) : new Map<string, string>();
      const held = new Set([...inUse.keys(), ...machineInUse.keys()]);
      if (this.blockedIds.some((id) => !held.has(id.toLowerCase()))) {
        this.kick('released', true);
        return;
      }
    } catch (err) {
      this.log.warn('pod-resources check failed while a change is pending', { error: (err as Error).message });
    }
    this.schedulePendingRecheck();
  }

  // ------------------------------------------------------------------ reconcile

  private async podInUse(inv: Inventory | null): Promise<Map<string, string>> {
    if (!this.podResources.available()) return new Map();
    const assignments = await this.podResources.list();
    const ids = new Set<string>();
    for (const g of inv?.gpus ?? []) {
      ids.add(g.pci.address);
      for (const v of g.vfs) ids.add(v.address);
      for (const p of g.mdevParents) for (const i of p.instances) ids.add(i.uuid);
    }
    return inUseFromAssignments(assignments, this.everServed, ids);
  }

  /**
   * Plan and apply one desired state. Used at boot (no API) and by reconcile.
   * Never throws for config/plan/apply problems: they come back in `error`.
   */
  private async applyDesired(
    d: Desired,
    mode: 'boot' | 'reconcile',
    skipIfMatches = false,
  ): Promise<{ plan: Plan | null; result: ApplyResult | null; inventory: Inventory | null; resourceNames: Record<string, string>; error: string | null; kind: 'config' | 'plan' | 'apply' | 'pod-resources' | null; noop: boolean }> {
    let resolved;
    try {
      resolved = resolveDesired(d);
    } catch (err) {
      if (isConfigError(err)) return { plan: null, result: null, inventory: null, resourceNames: {}, error: err.message, kind: 'config', noop: false };
      throw err;
    }
    let inUse = new Map<string, string>();
    try {
      inUse = await this.podInUse(this.lastInventory ?? null);
    } catch (err) {
      if (mode === 'reconcile') {
        // Never guess: without the kubelet's answer a change could take a device from a running VM.
        return { plan: null, result: null, inventory: null, resourceNames: {}, error: (err as Error).message, kind: 'pod-resources', noop: false };
      }
      this.log.warn('boot: pod-resources is not available; relying on open VFIO devices only', { error: (err as Error).message });
    }
    this.lastInUse = inUse;
    let planned: { inv: Inventory; plan: Plan };
    try {
      planned = await planOn(this.o.machine, { file: resolved.file, name: resolved.config.name, nodeId: this.o.nodeName, extraInUse: inUse });
    } catch (err) {
      return { plan: null, result: null, inventory: null, resourceNames: {}, error: (err as Error).message, kind: 'plan', noop: false };
    }
    const { plan } = planned;
    let inv = planned.inv;
    const resourceNames = resourceNamesOf(resolved.config, inv);
    if (plan.errors.length) {
      return { plan, result: null, inventory: inv, resourceNames, error: plan.errors.map((e) => `${e.where}: ${e.message}`).join('; '), kind: 'plan', noop: false };
    }
    if (skipIfMatches && plan.actions.length === 0 && plan.blocked.length === 0) {
      return { plan, result: null, inventory: inv, resourceNames, error: null, kind: null, noop: true };
    }
    let result: ApplyResult;
    try {
      result = await applyPlan(plan, { port: this.o.machine.port, tools: this.o.machine.tools });
    } finally {
      this.o.machine.commit();
    }
    // For the device plugins: no need to ask nvidia-smi for mixed-size modes again.
    if (result.writes > 0 || result.steps.length > 0) inv = await this.o.machine.inventory({ mixedSizeMode: false });
    if (result.failure) return { plan, result, inventory: inv, resourceNames, error: result.failure.message, kind: 'apply', noop: false };
    if ((!result.blocked.length || result.writes > 0) && (this.applied?.key !== desiredKey(d) || result.writes > 0)) {
      try {
        this.applied = this.store.save(d);
      } catch (err) {
        this.log.error('cannot persist the applied config; a reboot will wait for the API server', { error: (err as Error).message });
        this.metrics.errors.inc({ kind: 'state' });
      }
    }
    return { plan, result, inventory: inv, resourceNames, error: null, kind: null, noop: false };
  }

  private async reconcile(force: boolean): Promise<void> {
    const t0 = this.triggerAt || performance.now();
    const trigger = this.trigger;
    this.triggerAt = 0;
    const want = this.desired();
    const key = this.keyOf(want);
    if (!want || key === null) return;
    if (!force && key === this.handledKey) return;
    if (this.retryTimer && !force) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    if (!want.ok) {
      this.handledKey = key;
      if (want.idle) {
        this.log.info(want.reason, {});
        return;
      }
      this.finish({ state: 'failed', reason: want.reason, key, config: null, plan: null, errors: [want.reason] }, t0, trigger, 0, 'config');
      this.scheduleRetry();
      return;
    }
    const d = want.desired;
    const same = this.applied?.key === key;
    const r = await this.applyDesired(d, 'reconcile', same);
    this.handledKey = key;
    if (r.inventory) this.lastInventory = r.inventory;
    if (r.error) {
      this.finish({ state: 'failed', reason: r.error, key, config: d.configName ?? d.workload, plan: r.plan, errors: [r.error] }, t0, trigger, r.result?.writes ?? 0, r.kind ?? 'apply');
      this.scheduleRetry();
      if (r.inventory && this.o.devicePlugins !== false) await this.syncDevicePlugins(r.inventory, r.resourceNames);
      return;
    }
    this.failures = 0;
    if (r.inventory && this.o.devicePlugins !== false) await this.syncDevicePlugins(r.inventory, r.resourceNames);
    const blocked = r.result?.blocked ?? r.plan?.blocked ?? [];
    this.blockedIds = blocked.map((b) => b.device);
    const writes = r.result?.writes ?? 0;
    if (blocked.length) {
      const reason = `${blocked.length} change(s) wait for devices in use: ${blocked
        .slice(0, 3)
        .map((b) => `${b.device} (${b.reason})`)
        .join('; ')}${blocked.length > 3 ? '; ...' : ''}`;
      this.finish({ state: 'pending', reason, key, config: d.configName ?? d.workload, plan: r.plan, errors: [], blocked }, t0, trigger, writes, null);
      this.schedulePendingRecheck();
    } else {
      const reason = r.noop ? 'the node already matches' : `applied (${writes} write(s))`;
      this.finish({ state: 'success', reason, key, config: d.configName ?? d.workload, plan: r.plan, errors: [] }, t0, trigger, writes, null, r.noop);
    }
    if (writes > 0) {
      // Give the kubelet a moment to register the plugins before checking them.
      const t = setTimeout(() => void this.validate().catch(() => {}), 3000);
      t.unref();
    }
  }

  private finish(
    s: { state: ConfigState; reason: string; key: string; config: string | null; plan: Plan | null; errors: string[]; blocked?: { device: string; change: string; reason: string }[] },
    t0: number,
    trigger: string,
    writes: number,
    errorKind: string | null,
    noop = false,
  ): void {
    const prev = this.status;
    this.status = {
      config: s.config,
      state: s.state,
      reason: s.reason,
      gpus: (s.plan?.gpus ?? []).map((g) => ({ gpu: g.gpu, model: g.model, mode: g.mode, want: g.want, kept: g.kept })),
      blocked: (s.blocked ?? []).map((b) => ({ device: b.device, change: b.change, reason: b.reason })),
      errors: s.errors,
      appliedAt: s.state === 'failed' ? (prev?.appliedAt ?? this.applied?.appliedAt ?? null) : (this.applied?.appliedAt ?? null),
      observedGeneration: s.key,
    };
    const result = noop ? 'noop' : s.state;
    const ms = performance.now() - t0;
    this.metrics.reconciles.inc({ result });
    this.metrics.reconcileDuration.observe({ result }, ms / 1000);
    this.metrics.blocked.set(this.status.blocked.length);
    for (const st of ['pending', 'success', 'failed']) this.metrics.state.set({ state: st }, st === s.state ? 1 : 0);
    if (errorKind) this.metrics.errors.inc({ kind: errorKind });
    this.updateVgpuGauge();
    const level = s.state === 'failed' ? 'error' : 'info';
    this.log[level]('reconciled', { trigger, state: s.state, config: s.config, writes, ms: Math.round(ms), reason: s.reason });
    // Events: each apply, each failure, and each new pending set.
    if (s.state === 'failed') this.event('Warning', 'VgpuConfigFailed', `config ${s.config ?? '?'}: ${s.reason}`);
    else if (s.state === 'pending') {
      const sig = `${s.key}|${this.blockedIds.join(',')}`;
      if (sig !== this.lastPendingEvent) this.event('Normal', 'VgpuConfigPending', `config ${s.config}: ${s.reason}`);
      this.lastPendingEvent = sig;
    } else if (writes > 0 || (prev !== null && (prev.state !== 'success' || prev.observedGeneration !== s.key))) {
      // An apply, or a change of outcome; a restart that finds the node matching posts nothing.
      this.event('Normal', 'VgpuConfigApplied', `config ${s.config} applied: ${s.reason}`);
    }
    if (s.state !== 'pending') this.lastPendingEvent = '';
    this.events.emit('reconciled', { result, state: s.state, key: s.key, writes, ms, trigger });
    this.schedulePublish(0);
  }

  private updateVgpuGauge(): void {
    const inv = this.lastInventory;
    if (!inv) return;
    this.metrics.vgpus.reset();
    const counts = new Map<string, number>();
    const add = (profile: string, id: string) => {
      const k = `${profile}\0${this.lastInUse.has(id.toLowerCase()) ? 'allocated' : 'free'}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    };
    for (const g of inv.gpus) {
      for (const v of g.vfs) if (v.currentTypeId) add(v.currentProfile ?? `type-${v.currentTypeId}`, v.address);
      for (const p of g.mdevParents) for (const i of p.instances) add(i.typeName ?? i.typeDir, i.uuid);
    }
    for (const [k, n] of counts) {
      const [profile, state] = k.split('\0') as [string, string];
      this.metrics.vgpus.set({ profile, state }, n);
    }
  }

  private async refreshAllocations(): Promise<void> {
    for (const [verb, n] of Object.entries(this.o.kube?.stats.byVerb ?? {})) this.metrics.apiRequests.set({ verb }, n);
    if (!this.podResources.available()) return;
    try {
      const assignments = await this.podResources.list();
      this.metrics.allocations.reset();
      const counts = new Map<string, number>();
      for (const a of assignments) if (this.everServed.has(a.resourceName)) counts.set(a.resourceName, (counts.get(a.resourceName) ?? 0) + 1);
      for (const r of this.everServed) this.metrics.allocations.set({ resource: r }, counts.get(r) ?? 0);
    } catch (err) {
      this.metrics.errors.inc({ kind: 'pod-resources' });
      this.log.debug('pod-resources List for metrics failed', { error: (err as Error).message });
    }
  }

  // ------------------------------------------------------------------ device plugins

  private async syncDevicePlugins(inv: Inventory, resourceNames: Record<string, string>): Promise<void> {
    const namesKey = JSON.stringify(Object.entries(resourceNames).sort());
    try {
      if (this.dpm && namesKey !== this.dpNamesKey) {
        this.log.info('resource names changed; restarting the device plugins', {});
        await this.dpm.stop();
        this.dpm = null;
      }
      if (!this.dpm) {
        const dpm = new DevicePluginManager({
          inventory: inv,
          port: this.o.machine.port,
          pluginDir: this.o.devicePluginDir,
          resourceNames,
          iommufd: this.o.iommufd ?? false,
          passthroughName: passthroughNamer(this.o.machine.pciIds),
          logger: this.log,
          ...this.o.devicePluginOptions,
        });
        dpm.events.on('allocated', (e: { resource: string }) => this.metrics.allocateCalls.inc({ resource: e.resource, result: 'ok' }));
        dpm.events.on('allocate-refused', (e: { resource: string; reason: string }) => this.metrics.allocateCalls.inc({ resource: e.resource, result: e.reason }));
        await dpm.start();
        this.dpm = dpm;
        this.dpNamesKey = namesKey;
      } else {
        await this.dpm.update(inv);
      }
      for (const s of this.dpm.status()) this.everServed.add(s.resourceName);
    } catch (err) {
      this.metrics.errors.inc({ kind: 'device-plugin' });
      this.log.error('device plugins could not be updated', { error: (err as Error).message });
    }
  }

  private permitted(inv: Inventory): string {
    try {
      const names = Object.fromEntries(JSON.parse(this.dpNamesKey || '[]') as [string, string][]);
      return JSON.stringify(permittedHostDevices(inv, { resourceNames: names, pciIds: this.o.machine.pciIds }));
    } catch (err) {
      this.log.warn('cannot compute permittedHostDevices', { error: (err as Error).message });
      return JSON.stringify({ pciHostDevices: [], mediatedDevices: [] });
    }
  }

  // ------------------------------------------------------------------ publishing

  private wanted(): { labels: Record<string, string>; annotations: Record<string, string> } {
    const labels: Record<string, string> = {};
    const annotations: Record<string, string> = {};
    if (this.status) {
      labels[LABEL_STATE] = this.status.state;
      annotations[ANNOTATION_STATUS] = JSON.stringify(this.status);
    }
    if (this.lastInventory) annotations[ANNOTATION_PERMITTED] = this.permitted(this.lastInventory);
    if (this.lastValidation) {
      labels[LABEL_VALIDATION] = this.lastValidation.passed ? 'passed' : 'failed';
      annotations[ANNOTATION_VALIDATION] = JSON.stringify(this.lastValidation);
    }
    return { labels, annotations };
  }

  private diff(): { labels: Record<string, string>; annotations: Record<string, string> } {
    const w = this.wanted();
    const have = this.node?.metadata ?? {};
    const labels: Record<string, string> = {};
    const annotations: Record<string, string> = {};
    for (const [k, v] of Object.entries(w.labels)) if (have.labels?.[k] !== v) labels[k] = v;
    for (const [k, v] of Object.entries(w.annotations)) if (have.annotations?.[k] !== v) annotations[k] = v;
    return { labels, annotations };
  }

  private nodeDiffers(): boolean {
    const d = this.diff();
    return Object.keys(d.labels).length + Object.keys(d.annotations).length > 0;
  }

  private schedulePublish(ms: number): void {
    if (this.stopped || !this.o.kube || this.publishTimer) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = null;
      void this.publish();
    }, ms);
  }

  private async publish(): Promise<void> {
    if (!this.o.kube || !this.node || this.stopped) return;
    const d = this.diff();
    if (!Object.keys(d.labels).length && !Object.keys(d.annotations).length) return;
    try {
      await patchNodeMetadata(this.o.kube, this.o.nodeName, d.labels, d.annotations);
      // Reflect the patch locally so an interleaved event does not re-send it.
      const md = (this.node.metadata ??= {});
      md.labels = { ...md.labels, ...d.labels };
      md.annotations = { ...md.annotations, ...d.annotations };
      this.publishFailures = 0;
      this.events.emit('published', { state: this.status?.state ?? null });
    } catch (err) {
      this.publishFailures++;
      this.metrics.errors.inc({ kind: 'api' });
      const ms = backoffDelay(this.publishFailures, 500, 30_000);
      this.log.warn('updating the Node failed; retrying', { error: describeApiError(err), inMs: ms });
      this.schedulePublish(ms);
    }
  }

  private event(type: EventType, reason: string, message: string): void {
    if (!this.o.kube) return;
    const kube = this.o.kube;
    const uid = this.node?.metadata?.uid;
    void postNodeEvent(kube, { name: this.o.nodeName, ...(uid ? { uid } : {}) }, type, reason, message, this.o.eventNamespace ?? 'default').catch((err: unknown) => {
      this.metrics.errors.inc({ kind: 'api' });
      this.log.warn('posting an Event failed', { reason, error: describeApiError(err) });
    });
  }

  // ------------------------------------------------------------------ validator

  /** Run the validator now and publish the result (labels + annotation) when it changed. */
  async validate(): Promise<ValidationReport> {
    const inv = await this.o.machine.inventory();
    let plan: Plan | null = null;
    let planUnavailable: string | undefined;
    const want = this.desired() ?? (this.applied ? { ok: true as const, desired: this.applied as Desired } : null);
    if (want?.ok) {
      try {
        const r = resolveDesired(want.desired);
        plan = (await planOn(this.o.machine, { file: r.file, name: r.config.name, nodeId: this.o.nodeName })).plan;
      } catch (err) {
        planUnavailable = `the config cannot be planned: ${(err as Error).message}`;
      }
    } else planUnavailable = want ? want.reason : 'no config selected yet';
    const plugins = this.dpm
      ? this.dpm.status().map((p) => ({ resourceName: p.resourceName, registered: p.registered, devices: p.devices.length, healthy: p.devices.filter((x) => x.healthy).length }))
      : this.o.devicePlugins === false
        ? null
        : [];
    const allocatable = this.o.kube ? (this.node?.status?.allocatable ?? null) : null;
    const report = validateNode({ inventory: inv, plan, ...(planUnavailable ? { planUnavailable } : {}), plugins, allocatable: allocatable ?? (this.o.kube ? {} : null) });
    for (const c of report.checks) if (c.status !== 'skipped') this.metrics.validation.set({ check: c.check }, c.status === 'passed' ? 1 : 0);
    const sameAsBefore = this.lastValidation && JSON.stringify(this.lastValidation.checks) === JSON.stringify(report.checks);
    if (!sameAsBefore) {
      this.lastValidation = report;
      if (!report.passed) this.metrics.errors.inc({ kind: 'validate' });
      this.log[report.passed ? 'info' : 'warn']('validation', { passed: report.passed, failed: report.checks.filter((c) => c.status === 'failed').map((c) => c.check) });
      this.schedulePublish(0);
    }
    this.events.emit('validated', this.lastValidation);
    return this.lastValidation ?? report;
  }

  // ------------------------------------------------------------------ introspection for tests and the CLI

  lastApplied(): AppliedState | null {
    return this.applied;
  }

  configProblem(): string | null {
    return this.configSource?.problem() ?? null;
  }

  currentConfig(): ConfigSnapshot | null {
    return this.configSource?.current() ?? null;
  }
}
