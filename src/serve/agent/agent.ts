/**
 * `vmgpu agent`, the loop: lifecycle, triggers, the worker's passes and the
 * timers. A pass turns what the Node's labels and the config file ask for
 * (inputs.ts) into the node's layout (reconcile.ts), keeps the device plugins
 * in step (plugins.ts) and reports on the Node (status.ts, publish.ts).
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
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import type { InUse } from '../../plan/types.js';
import type { DevicePluginManager, DevicePluginManagerOptions } from '../deviceplugin/manager.js';
import { configureDra, exceptDra, type DraHooks } from '../dra/modes.js';
import { withDraPermitted } from '../dra/permitted.js';
import { mergeInUse } from '../../machine/in-use.js';
import { messageOf } from '../errors.js';
import { describeApiError, type Kube } from '../kube/kube.js';
import { jsonLogger, type Logger } from '../kube/logger.js';
import { podsHolding, PodResourcesClient } from '../kubelet/pod-resources.js';
import type { ConfigSnapshot } from './config-source.js';
import { withSharedNames } from '../../machine/shared-names.js';
import { ClusterCatalog } from './cluster-catalog.js';
import { lookForDrift, type DriftFinding } from './drift.js';
import { LABEL_MANAGED, ManagedMark, servedInventory } from './managed.js';
import { AgentInputs, keyOf, type InputSource } from './inputs.js';
import { createMetrics, serveMetrics, type AgentMetrics } from './metrics.js';
import { AgentPlugins } from './plugins.js';
import { NodePublisher, nodeMetadataFor } from './publish.js';
import { AppliedRecord, reconcileDesired, writesOf, type Planned, type ReconcileEnv } from './reconcile.js';
import { StateStore, type AppliedState, type Desired, type WorkloadMode } from './state.js';
import { releasedForPending, StatusReporter, unusableDesired, verdictOf, type AgentStatus, type Verdict } from './status.js';
import { validateMachine, type ValidationTarget } from './validation.js';
import type { ValidationReport } from './validator.js';
import { Worker, type Pass } from './worker.js';

export type { AgentStatus, ConfigState } from './status.js';

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
  /**
   * This host has no kubelet: which devices VMs hold is told by open VFIO
   * files alone. Off by default: without it, a missing pod-resources socket
   * means in-use cannot be determined, and nothing changes.
   */
  noKubelet?: boolean;
  iommufd?: boolean;
  metricsAddr?: string | null;
  logger?: Logger;
  /** 0 disables the periodic validator. */
  validateIntervalMs?: number;
  /** How often to re-check pod-resources while a change is pending (default 2 s). */
  pendingRecheckMs?: number;
  /** How often to check the node against its status, locally (drift.ts; default 30 s, 0 disables). */
  driftCheckMs?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Run the device plugins in-process (default true). */
  devicePlugins?: boolean;
  devicePluginOptions?: Partial<DevicePluginManagerOptions>;
  eventNamespace?: string;
  /** The cluster catalog ConfigMap (vGPU type names shared between agents); null: none. */
  catalogMap?: { namespace: string; name: string } | null;
  /** Backoff of the node watch (tests shorten it). */
  watchBackoffInitialMs?: number;
  watchBackoffMaxMs?: number;
  metrics?: AgentMetrics;
  /** The DRA driver, in-process (`--dra`): told each desired state's DRA GPUs before the static plan. */
  dra?: DraHooks | null;
}

/**
 * Events: `reconciled` {result, state, key, writes, ms, trigger}; `published` {state};
 * `validated` ValidationReport; `api-error` {error}.
 */
export class Agent {
  readonly events = new EventEmitter();
  readonly metrics: AgentMetrics;
  private readonly applied: AppliedRecord;
  private readonly log: Logger;
  private readonly inputs: AgentInputs;
  private readonly worker: Worker;
  private readonly podResources: PodResourcesClient;
  private readonly plugins: AgentPlugins;
  private readonly publisher: NodePublisher;
  private readonly reporter: StatusReporter;
  /** The node, with the cluster catalog as its last type-name source when there is one. */
  private readonly machine: Machine;
  private readonly catalog: ClusterCatalog | null;
  /** vmgpu.io/managed on our Node: keeps the agent on a node moved to `container` until its GPUs are back (managed.ts). */
  private readonly mark: ManagedMark;
  /** The workload the node is laid out for (boot: the recorded one); `container` serves nothing. */
  private workload: WorkloadMode | null = null;
  private metricsServer: Server | null = null;
  /** Key of the desired state the last reconcile handled (success, pending or failed). */
  private handledKey: string | null = null;
  private lastInventory: Inventory | null = null;
  /** What pods held at the last reconcile (the vGPU gauge's allocated/free). */
  private podsHeld: InUse = new Map();
  private pendingTimer: NodeJS.Timeout | null = null;
  private validateTimer: NodeJS.Timeout | null = null;
  private driftTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private bootDone = false;

  constructor(private readonly opts: AgentOptions) {
    const log = (this.log = opts.logger ?? jsonLogger({ base: { component: 'agent', node: opts.nodeName }, write: (l) => process.stdout.write(l) }));
    const metrics = (this.metrics = opts.metrics ?? createMetrics());
    this.applied = new AppliedRecord(new StateStore(opts.stateDir), log, metrics);
    this.catalog = opts.kube && opts.catalogMap ? new ClusterCatalog({ kube: opts.kube, ref: opts.catalogMap, nodeName: opts.nodeName, log, onChange: () => this.onNamesChanged() }) : null;
    this.machine = this.catalog ? withSharedNames(opts.machine, this.catalog) : opts.machine;
    this.inputs = new AgentInputs({ ...opts, log, metrics, events: this.events });
    this.mark = new ManagedMark({ kube: opts.kube, nodeName: opts.nodeName, node: () => this.inputs.node() });
    this.worker = new Worker((pass) => this.reconcile(pass), { retryInitialMs: opts.retryInitialMs ?? 1000, retryMaxMs: opts.retryMaxMs ?? 5 * 60_000, log, metrics });
    this.podResources = new PodResourcesClient(opts.podResourcesSocket);
    this.plugins = new AgentPlugins({ enabled: opts.devicePlugins !== false, machine: this.machine, pluginDir: opts.devicePluginDir, iommufd: opts.iommufd ?? false, log, metrics, managerOptions: opts.devicePluginOptions });
    this.publisher = new NodePublisher({
      kube: opts.kube,
      nodeName: opts.nodeName,
      eventNamespace: opts.eventNamespace ?? 'default',
      node: () => this.inputs.node(),
      wanted: () => nodeMetadataFor({ status: this.reporter.current(), permitted: this.permittedAnnotation(), validation: this.reporter.lastValidation() }),
      published: () => this.events.emit('published', { state: this.reporter.current()?.state ?? null }),
      metrics,
      log,
    });
    this.reporter = new StatusReporter({ metrics, log, events: this.events, postEvent: (e) => this.publisher.event(e), publish: () => this.publisher.schedule(0) });
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    if (this.opts.metricsAddr) await this.serveMetrics(this.opts.metricsAddr);
    await this.opts.dra?.start();
    this.catalog?.start();
    await this.boot();
    this.inputs.start((source) => this.onInputsChanged(source));
    const every = this.opts.validateIntervalMs ?? 5 * 60_000;
    if (every > 0) this.validateTimer = setInterval(() => void this.validate().catch(() => {}), every);
    const drift = this.opts.driftCheckMs ?? 30_000;
    if (drift > 0) this.driftTimer = setInterval(() => void this.checkDrift(), drift);
  }

  /** Re-apply the last applied config before the API server is involved; then serve what the node has. */
  private async boot(): Promise<void> {
    const last = this.applied.load();
    let planned: Planned | null = null;
    if (last) {
      if (this.opts.dra) await configureDra(this.opts.dra, this.machine, last);
      const outcome = await reconcileDesired(this.reconcileEnv(), { desired: last, mode: 'boot' });
      this.applied.update(outcome, last);
      planned = outcome.planned;
      const error = outcome.kind === 'failed' ? outcome.error : outcome.kind === 'busy' ? outcome.reason : null;
      this.log.info('boot: re-applied the last applied config', { config: last.configName, workload: last.workload, writes: writesOf(outcome), blocked: outcome.planned?.plan.blocked.length ?? 0, error });
    } else {
      this.log.info('boot: no applied config recorded yet; waiting for the node labels', { stateFile: this.applied.store.file });
    }
    this.workload = last?.workload ?? null;
    this.lastInventory = planned?.inventory ?? (await this.machine.inventory());
    void this.catalog?.publish(this.lastInventory);
    await this.syncPlugins(this.lastInventory, planned?.resourceNames ?? {});
    this.bootDone = true;
  }

  private async serveMetrics(addr: string): Promise<void> {
    this.metricsServer = await serveMetrics(addr, this.metrics, {
      healthy: () => ({ ok: !this.stopped, detail: this.stopped ? 'stopping' : 'running' }),
      ready: () => {
        const state = this.reporter.current()?.state ?? (this.applied.current() ? 'success' : 'pending');
        const ok = this.bootDone && this.plugins.ready() && state !== 'failed';
        return { ok, detail: `boot ${this.bootDone ? 'done' : 'running'}, device plugins ${this.plugins.running() ? 'serving' : 'not started'}, config state ${state}` };
      },
      beforeScrape: async () => {
        for (const [verb, n] of Object.entries(this.opts.kube?.stats.byVerb ?? {})) this.metrics.apiRequests.set({ verb }, n);
        await this.plugins.refreshAllocations(this.podResources);
      },
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.worker.stop();
    this.publisher.stop();
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    if (this.validateTimer) clearInterval(this.validateTimer);
    if (this.driftTimer) clearInterval(this.driftTimer);
    await this.inputs.stop();
    await this.catalog?.stop();
    await this.worker.idle();
    await this.plugins.stop();
    await this.opts.dra?.stop();
    this.podResources.close();
    if (this.metricsServer) await new Promise<void>((r) => this.metricsServer!.close(() => r()));
  }

  // ------------------------------------------------------------------ triggers

  private onInputsChanged(source: InputSource): void {
    if (this.stopped || !this.bootDone) return;
    const key = keyOf(this.inputs.desired());
    if (key === null) return;
    if (key !== this.handledKey) {
      this.worker.resetBackoff();
      this.worker.kick(source, false);
    } else if (source === 'node' && this.reporter.current()) {
      // Our own patch coming back, or a kubelet heartbeat: republish only if our keys were changed by someone else.
      if (this.publisher.differs()) this.publisher.schedule(0);
    }
  }

  /** The cluster catalog names types differently now: a node with types it could not name looks again. */
  private onNamesChanged(): void {
    if (this.stopped || !this.bootDone || !this.reporter.current()?.undetermined.length) return;
    this.worker.kick('names', true);
  }

  private schedulePendingRecheck(): void {
    if (this.pendingTimer || this.stopped) return;
    this.pendingTimer = setTimeout(() => {
      this.pendingTimer = null;
      void this.recheckPending();
    }, this.opts.pendingRecheckMs ?? 2000);
  }

  /** While pending: ask the kubelet (locally) whether the blocking devices were released. */
  private async recheckPending(): Promise<void> {
    if (this.stopped || this.reporter.current()?.state !== 'pending') return;
    try {
      const pods = await this.askKubelet();
      const machineInUse = this.lastInventory ? this.machine.inUse(this.lastInventory) : new Map<string, string>();
      const held = new Set([...pods.keys(), ...machineInUse.keys(), ...(this.opts.dra?.held().keys() ?? [])]);
      const status = this.reporter.current();
      if (status && releasedForPending(status, held)) {
        this.worker.kick('released', true);
        return;
      }
    } catch (err) {
      this.log.warn('pod-resources check failed while a change is pending', { error: messageOf(err) });
    }
    this.schedulePendingRecheck();
  }

  /** The periodic local assert (drift.ts): repair what a driver reload undid; look again when names appear. */
  async checkDrift(): Promise<DriftFinding | null> {
    const status = this.reporter.current();
    const want = this.inputs.desired();
    if (this.stopped || !this.bootDone || this.worker.busy() || !status || !want?.ok || keyOf(want) !== status.observedGeneration) return null;
    // A `container` node whose GPUs went back is left alone (managed.ts).
    if (want.desired.workload === 'container' && !this.mark.present()) return null;
    let found: DriftFinding | null;
    try {
      found = await lookForDrift(this.machine, want.desired, status, this.opts.nodeName, await this.askKubelet());
    } catch (err) {
      // Without the kubelet's answer a waiting change would look like drift: skip this look.
      this.log.warn('the periodic check of the node could not run', { error: messageOf(err) });
      return null;
    }
    // A pass that ran meanwhile may have changed the node: what was seen is stale, not drift.
    if (!found || this.stopped || this.worker.busy() || this.reporter.current() !== status) return null;
    if (found.kind === 'drift') {
      this.metrics.drift.inc();
      this.log.warn('the node no longer matches its config; repairing what is free', { config: status.config, found: found.summary });
      this.publisher.event({ type: 'Warning', reason: 'VgpuDriftDetected', message: `config ${status.config ?? '?'}: ${found.summary}; repairing the devices that are free` });
    }
    this.worker.kick(found.kind, true);
    return found;
  }

  // ------------------------------------------------------------------ one pass of the worker

  private async reconcile(pass: Pass): Promise<void> {
    const want = this.inputs.desired();
    const key = keyOf(want);
    if (!want || key === null) return;
    if (!pass.force && key === this.handledKey) return;
    if (!pass.force) this.worker.cancelRetry();
    if (!want.ok) {
      this.handledKey = key;
      if (want.idle) this.log.info(want.reason, {});
      else {
        this.report(unusableDesired(want.reason), key, pass);
        this.worker.retry();
      }
      return;
    }
    const d = want.desired;
    if (!(await this.markManaged(d, key, pass))) return;
    this.workload = d.workload;
    if (this.opts.dra) await configureDra(this.opts.dra, this.machine, d);
    const outcome = await reconcileDesired(this.reconcileEnv(), { desired: d, mode: 'reconcile', skipIfMatches: this.applied.current()?.key === key });
    this.applied.update(outcome, d);
    this.handledKey = key;
    const planned = outcome.planned;
    if (planned) {
      this.lastInventory = planned.inventory;
      void this.catalog?.publish(planned.inventory);
    }
    const verdict = verdictOf(outcome, d.configName ?? d.workload);
    if (outcome.kind === 'busy') {
      // An admin's `vmgpu apply` is changing the node: not a failure of the config, a retry.
      this.report(verdict, key, pass);
      this.worker.retry();
      return;
    }
    if (outcome.kind === 'failed') {
      this.report(verdict, key, pass);
      this.worker.retry();
      if (planned) await this.syncPlugins(planned.inventory, planned.resourceNames);
      return;
    }
    this.worker.resetBackoff();
    await this.syncPlugins(outcome.planned.inventory, outcome.planned.resourceNames);
    this.report(verdict, key, pass);
    if (verdict.state === 'pending') this.schedulePendingRecheck();
    if (verdict.state === 'success' && d.workload === 'container') await this.stepAside();
    // Give the kubelet a moment to register the plugins before checking them.
    if (verdict.writes > 0) setTimeout(() => void this.validate().catch(() => {}), 3000).unref();
  }

  /** Before a node is changed for VMs it carries the managed mark; without it nothing is changed (managed.ts). */
  private async markManaged(d: Desired, key: string, pass: Pass): Promise<boolean> {
    if (d.workload === 'container') return true;
    try {
      await this.mark.set(true);
      return true;
    } catch (err) {
      const reason = `cannot label the node ${LABEL_MANAGED}=true, which keeps the agent on it should it be moved to the container workload: ${describeApiError(err)}; nothing was changed, retrying`;
      this.report({ ...unusableDesired(reason), config: d.configName ?? d.workload, errorKind: 'api' }, key, pass);
      this.worker.retry();
      return false;
    }
  }

  /** A `container` node whose GPUs are all back on the host driver: take the mark off, so the DaemonSet leaves it. */
  private async stepAside(): Promise<void> {
    try {
      if (!(await this.mark.set(false))) return;
      this.log.info(`every GPU is back on its host driver; removed ${LABEL_MANAGED}, so the agent leaves this container node`, {});
      this.publisher.event({ type: 'Normal', reason: 'GpusReturnedToHost', message: `every GPU is back on its host driver for the container workload; vmgpu removed ${LABEL_MANAGED} and its agent leaves the node` });
    } catch (err) {
      this.log.warn(`removing ${LABEL_MANAGED} failed; retrying`, { error: describeApiError(err) });
      this.worker.retry();
    }
  }

  private reconcileEnv(): ReconcileEnv {
    const podsHeld = async () => (this.podsHeld = await this.askKubelet());
    // Devices the DRA driver prepared are in use for the static plan too (a GPU switched back to static mode).
    const held = async () => mergeInUse(await podsHeld(), this.opts.dra?.held() ?? new Map());
    return { machine: this.machine, nodeId: this.opts.nodeName, log: this.log, podsHolding: held };
  }

  /** KubeVirt's entries for the device plugins' resources and the DRA driver's extended resources. */
  private permittedAnnotation(): string | null {
    const own = this.lastInventory ? this.plugins.permittedAnnotation(servedInventory(this.lastInventory, this.workload)) : null;
    return this.opts.dra ? withDraPermitted(own, this.opts.dra.permitted()) : own;
  }

  /** The device plugins serve everything but what the DRA driver has. */
  private async syncPlugins(inv: Inventory, names: Record<string, string>): Promise<void> {
    const dra = this.opts.dra;
    const served = servedInventory(inv, this.workload);
    await this.plugins.sync(dra ? exceptDra(served, dra.gpus(), dra.held()) : served, names);
  }

  /** What pods hold of this node's devices; nothing with --no-kubelet. Throws when the kubelet cannot answer. */
  private async askKubelet(): Promise<InUse> {
    if (this.opts.noKubelet) return new Map();
    return podsHolding(this.podResources, this.lastInventory, this.plugins.everServed);
  }

  private report(v: Verdict, key: string, pass: Pass): void {
    const vgpus = this.lastInventory ? { inventory: this.lastInventory, inUse: this.podsHeld } : null;
    this.reporter.reconciled(v, key, pass, this.applied.current()?.appliedAt ?? null, vgpus);
  }

  /** Run the validator now and publish the result (labels + annotation) when it changed. */
  async validate(): Promise<ValidationReport> {
    const want = this.inputs.desired();
    const last = this.applied.current();
    const target: ValidationTarget = want ? (want.ok ? { desired: want.desired } : { unavailable: want.reason }) : last ? { desired: last } : { unavailable: 'no config selected yet' };
    const allocatable = this.opts.kube ? (this.inputs.node()?.status?.allocatable ?? {}) : null;
    return this.reporter.validated(await validateMachine(this.machine, target, this.opts.nodeName, { plugins: () => this.plugins.view(), allocatable }));
  }

  // ------------------------------------------------------------------ introspection for tests and the CLI

  /** The status last computed (what is or will be on the Node). */
  currentStatus(): AgentStatus | null {
    return this.reporter.current();
  }

  devicePluginManager(): DevicePluginManager | null {
    return this.plugins.running();
  }

  /** Resolves when the reconcile worker is idle. */
  async idle(): Promise<void> {
    await this.worker.idle();
  }

  lastApplied(): AppliedState | null {
    return this.applied.current();
  }

  configProblem(): string | null {
    return this.inputs.configProblem();
  }

  currentConfig(): ConfigSnapshot | null {
    return this.inputs.config();
  }
}
