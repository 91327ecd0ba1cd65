/**
 * The DRA driver, in-process with the agent: the kubelet plugin (plugin.ts),
 * the ResourceSlices (publisher.ts), Prepare/Unprepare (prepare.ts) and
 * health. The agent tells it which GPUs are in DRA mode and the policy
 * (configure); every change to the hardware, and every mode change, runs one
 * at a time, so a GPU switching modes is never prepared on halfway.
 */
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import { checkPciAddress } from '../../model/pci.js';
import type { InUse } from '../../plan/types.js';
import type { DraPolicySpec } from '../../spec/dra-policy.js';
import { messageOf } from '../errors.js';
import { isKubeApiError, type Kube } from '../kube/kube.js';
import type { Logger } from '../kube/logger.js';
import type { ClaimsRequestMsg, DeviceHealthMsg, PrepareResponseMsg, UnprepareResponseMsg, WatchResourcesResponseMsg } from '../kubelet/dra-api.js';
import { DraApiClient } from './api.js';
import { CdiWriter, DEFAULT_CDI_DIR } from './cdi.js';
import { Checkpoint, targetId } from './checkpoint.js';
import type { AllocationModel, Pool } from './devices.js';
import { MetadataWriter } from './metadata.js';
import { draPermitted } from './permitted.js';
import type { PermittedHostDevices } from '../kubevirt/permitted.js';
import { nodePool, UNHEALTHY_TAINT, type GpuStatus } from './node-pool.js';
import { DraPlugin, type PluginPaths } from './plugin.js';
import { resolvePolicy, type DraPolicy } from './policy.js';
import { Preparer } from './prepare.js';
import { chooseModel, probeFeatures } from './probe.js';
import { SlicePublisher } from './publisher.js';

export interface DraDriverOptions {
  machine: Machine;
  /** Null: no API server (tests of the kubelet side only); nothing is published and no claim can be read. */
  kube: Kube | null;
  nodeName: string;
  /** The checkpoint lives here (the agent's state dir). */
  stateDir: string;
  paths: PluginPaths;
  cdiDir?: string;
  iommufd?: boolean;
  log: Logger;
  /** How often to re-check health and look for orphaned claims (default 30 s; 0: never). */
  resyncMs?: number;
  lockWaitMs?: number;
}

export interface DraStatus {
  model: AllocationModel | null;
  registered: boolean;
  gpus: GpuStatus[];
  claims: number;
}

export class DraDriver {
  readonly checkpoint: Checkpoint;
  readonly plugin: DraPlugin;
  private readonly api: DraApiClient | null;
  private readonly publisher: SlicePublisher | null;
  /** The agent has said once which GPUs are in DRA mode (configure). */
  private configured = false;
  private readonly preparer: Preparer;
  private draGpus: ReadonlySet<string> = new Set();
  private policy: DraPolicy = resolvePolicy(null);
  private model: AllocationModel | null = null;
  private pool: Pool = { counterSets: [], devices: [], info: new Map() };
  private gpuStatus: GpuStatus[] = [];
  private lastInventory: Inventory | null = null;
  private pcieRoots = new Map<string, string | null>();
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: DraDriverOptions) {
    this.checkpoint = new Checkpoint(o.stateDir);
    this.api = o.kube ? new DraApiClient(o.kube, o.nodeName) : null;
    this.publisher = o.kube && this.api ? new SlicePublisher(o.kube, this.api, o.log) : null;
    this.plugin = new DraPlugin(o.paths, { prepare: (r) => this.prepare(r), unprepare: (r) => this.unprepare(r), health: () => this.health() }, o.log);
    const noApi = async (): Promise<never> => {
      throw new Error('the DRA driver runs without an API server and cannot read ResourceClaims');
    };
    this.preparer = new Preparer({
      machine: o.machine,
      nodeName: o.nodeName,
      checkpoint: this.checkpoint,
      api: this.api ?? { getClaim: noApi, getDeviceClass: noApi },
      cdi: new CdiWriter(o.cdiDir ?? DEFAULT_CDI_DIR),
      metadata: new MetadataWriter(this.plugin.paths.dataDir),
      iommufd: o.iommufd ?? false,
      draGpus: () => this.draGpus,
      pcieRoot: (gpu) => this.pcieRoot(gpu),
      log: o.log,
      ...(o.lockWaitMs !== undefined ? { lockWaitMs: o.lockWaitMs } : {}),
    });
  }

  /** Load the checkpoint, finish interrupted removals, serve the kubelet, choose the model, start publishing. */
  async start(): Promise<void> {
    this.checkpoint.load();
    await this.serialize(() => this.finishRemovals());
    await this.plugin.start();
    if (this.api && this.publisher) await this.choosePublishing(this.api, this.publisher);
    const every = this.o.resyncMs ?? 30_000;
    if (every > 0) this.timer = setInterval(() => void this.resync().catch((err: unknown) => this.o.log.warn('DRA resync failed', { error: messageOf(err) })), every);
    await this.refresh();
  }

  /**
   * Ask the API server which model it can carry and start publishing. A server
   * without resource.k8s.io/v1 (Kubernetes before 1.34) gets nothing published:
   * the driver still serves the kubelet, and says why in the log.
   */
  private async choosePublishing(api: DraApiClient, publisher: SlicePublisher): Promise<void> {
    let features;
    try {
      features = await probeFeatures(api);
    } catch (err) {
      this.o.log.error('the API server does not take gpu.vmgpu.io ResourceSlices; the DRA driver publishes nothing (DRA needs Kubernetes 1.34+, resource.k8s.io/v1, and RBAC for resourceslices)', { error: messageOf(err) });
      return;
    }
    const chosen = chooseModel(this.policy.allocation, features);
    this.model = chosen.model;
    this.o.log.info('DRA allocation model', { model: chosen.model, features, note: chosen.note });
    publisher.start();
  }

  async stop(opts: { removeSlices?: boolean } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.queue.catch(() => {});
    await this.plugin.stop();
    await this.publisher?.stop(opts);
  }

  /** The agent's word on which GPUs are in DRA mode, and the policy. Waits for hardware changes in flight. */
  async configure(gpus: readonly string[], policy: DraPolicySpec | null | undefined): Promise<void> {
    const next = resolvePolicy(policy);
    await this.serialize(async () => {
      this.draGpus = new Set(gpus.map((g) => checkPciAddress(g)));
      this.configured = true;
      if (next.allocation !== this.policy.allocation && this.api && this.model !== null) {
        const features = await probeFeatures(this.api).catch((err: unknown) => {
          this.o.log.warn('cannot ask the API server for the new allocation model; keeping the current one', { error: messageOf(err) });
          return null;
        });
        if (features) this.model = chooseModel(next.allocation, features).model;
      }
      this.policy = next;
    });
    await this.refresh().catch((err: unknown) => this.o.log.warn('reading the node for the DRA pool failed; the last pool stays published', { error: messageOf(err) }));
  }

  /** Devices prepared for claims, with the claim: the static planner must not touch them. */
  held(): InUse {
    const out = new Map<string, string>();
    for (const r of this.checkpoint.all()) for (const d of r.devices) out.set(targetId(d.target), `prepared for ResourceClaim ${r.namespace}/${r.name} by the DRA driver`);
    return out;
  }

  /** GPUs in DRA mode now. */
  gpus(): ReadonlySet<string> {
    return this.draGpus;
  }

  status(): DraStatus {
    return { model: this.model, registered: this.plugin.isRegistered(), gpus: this.gpuStatus, claims: this.checkpoint.all().length };
  }

  /** The pool last computed (what is, or is being, published). */
  currentPool(): Pool {
    return this.pool;
  }

  /** KubeVirt's permittedHostDevices entries for the extended resources of the pool (permitted.ts). */
  permitted(): PermittedHostDevices {
    return this.lastInventory ? draPermitted(this.pool, this.lastInventory) : { pciHostDevices: [], mediatedDevices: [] };
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async prepare(req: ClaimsRequestMsg): Promise<PrepareResponseMsg> {
    const out: PrepareResponseMsg = { claims: {} };
    for (const c of req.claims) out.claims[c.uid] = await this.serialize(() => this.preparer.prepare(c));
    this.plugin.healthChanged();
    return out;
  }

  private async unprepare(req: ClaimsRequestMsg): Promise<UnprepareResponseMsg> {
    const out: UnprepareResponseMsg = { claims: {} };
    for (const c of req.claims) out.claims[c.uid] = { error: await this.serialize(() => this.preparer.unprepare(c)) };
    void this.refresh();
    return out;
  }

  /** Recompute the pool and the GPUs' status from the node; publish when it changed. */
  async refresh(): Promise<void> {
    const inv = await this.serialize(() => this.o.machine.inventory({ mixedSizeMode: false }));
    const { pool, gpus } = nodePool({ inv, draGpus: this.draGpus, policy: this.policy, model: this.model ?? 'pinned', records: this.checkpoint.all(), pcieRoot: (g) => this.pcieRoot(g, inv) });
    this.pool = pool;
    this.lastInventory = inv;
    this.gpuStatus = gpus;
    this.plugin.healthChanged();
    // Before the agent has said which GPUs are ours, the pool would be empty: publishing it would
    // take the devices a restarted driver published before from the scheduler for nothing.
    if (this.publisher && this.model && this.configured) await this.publisher.publish(pool);
  }

  private pcieRoot(gpu: string, inv?: Inventory): string | null {
    if (!this.pcieRoots.has(gpu) && inv?.gpus.some((g) => g.pci.address === gpu)) this.pcieRoots.set(gpu, this.o.machine.port.readPcieRoot(checkPciAddress(gpu)) ?? null);
    return this.pcieRoots.get(gpu) ?? null;
  }

  private health(): WatchResourcesResponseMsg {
    const now = Math.floor(Date.now() / 1000);
    const entry = (device: string, healthy: boolean, message: string): DeviceHealthMsg => ({ device: { pool_name: this.o.nodeName, device_name: device }, health: healthy ? 'HEALTHY' : 'UNHEALTHY', last_updated_time: now, health_check_timeout_seconds: 0, message });
    const devices = new Map<string, DeviceHealthMsg>();
    for (const d of this.pool.devices) {
      const sick = d.taints?.some((t) => t.key === UNHEALTHY_TAINT);
      devices.set(d.name, entry(d.name, !sick, sick ? (this.gpuStatus.find((g) => g.gpu === this.pool.info.get(d.name)?.gpu)?.notes.join('; ') ?? 'unhealthy') : ''));
    }
    // Prepared devices whose GPU is gone from the pool (fell off the bus, switched mode) are reported too.
    for (const r of this.checkpoint.all()) for (const d of r.devices) if (!devices.has(d.device)) devices.set(d.device, entry(d.device, this.gpuStatus.some((g) => g.gpu === d.gpu && g.healthy), 'its GPU is not offered now'));
    return { devices: [...devices.values()] };
  }

  /** Removals a crash interrupted: their claims' pods are gone, finish them. */
  private async finishRemovals(): Promise<void> {
    for (const r of this.checkpoint.all().filter((x) => x.state === 'unpreparing')) {
      await this.preparer.remove(r).catch((err: unknown) => this.o.log.warn('finishing an interrupted Unprepare failed; retried later', { claim: `${r.namespace}/${r.name}`, error: messageOf(err) }));
    }
  }

  /**
   * Health and orphans: records whose claim no longer exists (deleted, or
   * recreated with another UID) are removed; a claim cannot be deleted while
   * a pod uses it, so nothing a pod relies on goes.
   */
  async resync(): Promise<void> {
    await this.serialize(() => this.finishRemovals());
    if (this.api) {
      for (const r of this.checkpoint.all()) {
        const gone = await this.api.getClaim(r.namespace, r.name).then(
          (c) => c.metadata.uid !== r.uid,
          (err: unknown) => (isKubeApiError(err, 404) ? true : null),
        );
        if (gone !== true) continue;
        this.o.log.info('removing the devices of a claim that no longer exists', { claim: `${r.namespace}/${r.name}`, uid: r.uid });
        await this.serialize(() => this.preparer.remove(r)).catch((err: unknown) => this.o.log.warn('removing an orphaned claim failed; retried later', { claim: `${r.namespace}/${r.name}`, error: messageOf(err) }));
      }
    }
    await this.refresh();
  }
}
