/**
 * `vmgpu agent`, the loop: lifecycle, triggers, the worker's passes and the
 * timers. A pass turns what the Node's labels and the config file ask for
 * (inputs.ts) into the node's layout (reconcile.ts), keeps the device plugins
 * in step (plugins.ts) and reports on the Node (status.ts, publish.ts).
 *
 * Triggers: a change of the Node's config/workload labels (list + watch of
 * our own Node only), a change of the config file, a retry after a failure
 * (exponential backoff with jitter), and the local checks (checks.ts): while
 * a change is pending on devices in use, pod-resources; periodically, drift.
 * Nothing polls the API server at steady state. A node laid out for VMs
 * carries the vmgpu.io/managed mark until its GPUs are back (managed.ts).
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
import type { DevicePluginManager } from '../deviceplugin/manager.js';
import { configureDra } from '../dra/modes.js';
import { mergeInUse } from '../../machine/in-use.js';
import { jsonLogger, type Logger } from '../kube/logger.js';
import { podsHolding, PodResourcesClient } from '../kubelet/pod-resources.js';
import type { ConfigSnapshot } from './config-source.js';
import { withSharedNames } from '../../machine/shared-names.js';
import { ClusterCatalog } from './cluster-catalog.js';
import { LocalChecks } from './checks.js';
import { ManagedMark } from './managed.js';
import { AgentInputs, keyOf, type InputSource } from './inputs.js';
import { createMetrics, serveMetrics, type AgentMetrics } from './metrics.js';
import { AgentPlugins } from './plugins.js';
import { NodePublisher, nodeMetadataFor } from './publish.js';
import { AppliedRecord, reconcileDesired, writesOf, type Planned, type ReconcileEnv } from './reconcile.js';
import { StateStore, type AppliedState, type WorkloadMode } from './state.js';
import { StatusReporter, unusableDesired, verdictOf, type AgentStatus, type Verdict } from './status.js';
import { validateMachine, type ValidationTarget } from './validation.js';
import type { ValidationReport } from './validator.js';
import type { AgentOptions } from './options.js';
import { Worker, type Pass } from './worker.js';

export type { AgentStatus, ConfigState } from './status.js';
export type { AgentOptions } from './options.js';

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
  private readonly checks: LocalChecks;
  private validateTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private bootDone = false;

  constructor(private readonly opts: AgentOptions) {
    const log = (this.log = opts.logger ?? jsonLogger({ base: { component: 'agent', node: opts.nodeName }, write: (l) => process.stdout.write(l) }));
    const metrics = (this.metrics = opts.metrics ?? createMetrics());
    this.applied = new AppliedRecord(new StateStore(opts.stateDir), log, metrics);
    this.catalog = opts.kube && opts.catalogMap ? new ClusterCatalog({ kube: opts.kube, ref: opts.catalogMap, nodeName: opts.nodeName, log, onChange: () => this.onNamesChanged() }) : null;
    this.machine = this.catalog ? withSharedNames(opts.machine, this.catalog) : opts.machine;
    this.inputs = new AgentInputs({ ...opts, log, metrics, events: this.events });
    this.worker = new Worker((pass) => this.reconcile(pass), { retryInitialMs: opts.retryInitialMs ?? 1000, retryMaxMs: opts.retryMaxMs ?? 5 * 60_000, log, metrics });
    this.podResources = new PodResourcesClient(opts.podResourcesSocket);
    this.plugins = new AgentPlugins({ enabled: opts.devicePlugins !== false, machine: this.machine, pluginDir: opts.devicePluginDir, iommufd: opts.iommufd ?? false, log, metrics, managerOptions: opts.devicePluginOptions, dra: opts.dra ?? null, workload: () => this.workload });
    this.publisher = new NodePublisher({
      kube: opts.kube,
      nodeName: opts.nodeName,
      eventNamespace: opts.eventNamespace ?? 'default',
      node: () => this.inputs.node(),
      wanted: () => nodeMetadataFor({ status: this.reporter.current(), permitted: this.plugins.permittedAnnotation(this.lastInventory), validation: this.reporter.lastValidation() }),
      published: () => this.events.emit('published', { state: this.reporter.current()?.state ?? null }),
      metrics,
      log,
    });
    this.mark = new ManagedMark({ kube: opts.kube, nodeName: opts.nodeName, node: () => this.inputs.node(), log, event: (e) => this.publisher.event(e) });
    this.checks = new LocalChecks({
      machine: this.machine,
      nodeName: opts.nodeName,
      pendingRecheckMs: opts.pendingRecheckMs ?? 2000,
      log,
      metrics,
      status: () => this.reporter.current(),
      desired: () => this.inputs.desired(),
      inventory: () => this.lastInventory,
      podsHold: () => this.askKubelet(),
      draHeld: () => this.opts.dra?.held() ?? new Map(),
      quiet: () => !this.stopped && this.bootDone && !this.worker.busy(),
      leftAlone: (workload) => this.mark.released(workload),
      kick: (trigger) => this.worker.kick(trigger, true),
      event: (e) => this.publisher.event(e),
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
    this.checks.start(this.opts.driftCheckMs ?? 30_000);
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
    await this.plugins.sync(this.lastInventory, planned?.resourceNames ?? {});
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
    this.checks.stop();
    if (this.validateTimer) clearInterval(this.validateTimer);
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
    const unmarked = await this.mark.before(d);
    if (unmarked) {
      this.report({ ...unusableDesired(unmarked), config: d.configName ?? d.workload, errorKind: 'api' }, key, pass);
      this.worker.retry();
      return;
    }
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
      if (planned) await this.plugins.sync(planned.inventory, planned.resourceNames);
      return;
    }
    this.worker.resetBackoff();
    await this.plugins.sync(outcome.planned.inventory, outcome.planned.resourceNames);
    this.report(verdict, key, pass);
    if (verdict.state === 'pending') this.checks.schedulePending();
    if (verdict.state === 'success' && d.workload === 'container' && !(await this.mark.release())) this.worker.retry();
    // Give the kubelet a moment to register the plugins before checking them.
    if (verdict.writes > 0) setTimeout(() => void this.validate().catch(() => {}), 3000).unref();
  }

  private reconcileEnv(): ReconcileEnv {
    const podsHeld = async () => (this.podsHeld = await this.askKubelet());
    // Devices the DRA driver prepared are in use for the static plan too (a GPU switched back to static mode).
    const held = async () => mergeInUse(await podsHeld(), this.opts.dra?.held() ?? new Map());
    return { machine: this.machine, nodeId: this.opts.nodeName, log: this.log, podsHolding: held };
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
