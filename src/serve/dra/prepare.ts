/**
 * NodePrepareResources and NodeUnprepareResources for one claim.
 *
 * Prepare: read the claim, resolve its devices here, choose their VF/mdev/GPU,
 * plan each GPU through the planner (capacity, in-use), record the targets in
 * the checkpoint (`preparing`) before the first write, apply, read back, write
 * the CDI spec and metadata, record `prepared`. Unprepare: record
 * `unpreparing`, plan each GPU without the claim's devices, apply, read back,
 * remove the files and the record. Both are idempotent and converge after a
 * crash between any two steps: a retried call finds the record and the
 * hardware and does only what is missing.
 */
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import type { Action, Plan } from '../../plan/types.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../kube/logger.js';
import type { ClaimMsg, PrepareResultMsg } from '../kubelet/dra-api.js';
import type { ClaimJson, DeviceClassJson } from './api.js';
import type { CdiWriter } from './cdi.js';
import { targetId, type Checkpoint, type ClaimRecord, type PreparedDevice } from './checkpoint.js';
import { viewClaim, type ClaimView } from './claim.js';
import { createdMdevs, foreignOn } from './gpu-plan.js';
import { applyChanges, othersOn, planChange, present, removalInUse } from './hardware.js';
import type { MetadataWriter } from './metadata.js';
import { claimOutputs } from './outputs.js';
import { chooseTargets, PrepareError } from './resolve.js';

export interface PrepareEnv {
  machine: Machine;
  /** The node's name: the pool's name, and part of every mdev UUID. */
  nodeName: string;
  checkpoint: Checkpoint;
  api: { getClaim(namespace: string, name: string): Promise<ClaimJson>; getDeviceClass(name: string): Promise<DeviceClassJson> };
  cdi: CdiWriter;
  metadata: MetadataWriter;
  /** Hand every VM /dev/iommu (the agent's --iommufd); a claim can also ask for it. */
  iommufd: boolean;
  /** GPUs in DRA mode now. */
  draGpus(): ReadonlySet<string>;
  pcieRoot(gpu: string): string | null;
  log: Logger;
  lockWaitMs?: number;
}

const COMMAND = 'vmgpu agent (DRA driver)';

export class Preparer {
  constructor(private readonly env: PrepareEnv) {}

  /** Prepare one claim; every failure becomes the claim's error (the kubelet puts it on the pod and retries). */
  async prepare(c: ClaimMsg): Promise<PrepareResultMsg> {
    try {
      return await this.prepareClaim(c);
    } catch (err) {
      const error = `${this.env.nodeName}: ${messageOf(err)}`;
      this.env.log.warn('NodePrepareResources refused', { claim: `${c.namespace}/${c.name}`, uid: c.uid, error });
      return { devices: [], error };
    }
  }

  private async prepareClaim(c: ClaimMsg): Promise<PrepareResultMsg> {
    const { env } = this;
    const t0 = Date.now();
    const claim = await env.api.getClaim(c.namespace, c.name);
    if (claim.metadata.uid !== c.uid) throw new PrepareError(`ResourceClaim ${c.namespace}/${c.name} now has UID ${claim.metadata.uid}, not ${c.uid}: it was deleted and created again`);
    const view = viewClaim(claim, env.nodeName);
    if (view.devices.length === 0) return { devices: [], error: '' };
    const inv = await this.readNode();
    const previous = env.checkpoint.get(c.uid);
    const mine = chooseTargets({ inv, records: env.checkpoint.all(), claimUid: c.uid, inUse: env.machine.inUse(inv), draGpus: env.draGpus(), config: view.config }, view.devices, previous?.devices ?? []);
    const plans = this.planPrepare(inv, c, mine);
    const record: ClaimRecord = { uid: c.uid, namespace: c.namespace, name: c.name, state: 'preparing', devices: mine, cdi: previous?.cdi ?? {}, since: previous?.since ?? new Date().toISOString() };
    this.recordTargets(record, plans, inv);
    const t1 = Date.now();
    const writes = await applyChanges(env.machine, plans.map((p) => p.plan), COMMAND, env.lockWaitMs ?? 30_000);
    await this.applyParams(record);
    const applyMs = Date.now() - t1;
    const after = await this.verify(record, 'prepared');
    const prepared = await this.writeOutputs(after, record, view);
    env.checkpoint.put(prepared);
    env.log.info('prepared', { claim: `${c.namespace}/${c.name}`, uid: c.uid, devices: mine.map((d) => `${d.device}=${targetId(d.target)}`), writes, ms: Date.now() - t0, applyMs });
    return { devices: prepared.devices.map((d, i) => ({ request_names: d.requests, pool_name: d.pool, device_name: d.device, cdi_device_ids: prepared.cdi[`${d.device}#${i}`] ?? [], ...(d.shareId ? { share_id: d.shareId } : {}) })), error: '' };
  }

  private async readNode(): Promise<Inventory> {
    const blind = this.env.machine.inUseBlindSpot();
    if (blind) throw new PrepareError(`the DRA driver changes no GPU: ${blind}; run the agent in the host PID namespace (the Helm chart sets hostPID: true)`);
    return this.env.machine.inventory({ mixedSizeMode: false });
  }

  /** One plan per GPU the claim touches, or PrepareError with why the GPU cannot take it. */
  private planPrepare(inv: Inventory, c: ClaimMsg, mine: PreparedDevice[]): { gpu: string; plan: ReturnType<typeof planChange> }[] {
    const records = this.env.checkpoint.all();
    const owned = new Set(records.flatMap((r) => r.devices.map((d) => targetId(d.target))));
    return [...new Set(mine.map((d) => d.gpu))].map((gpu) => {
      const g = inv.gpus.find((x) => x.pci.address === gpu)!;
      const ownsWhole = [...records.flatMap((r) => r.devices), ...mine].some((d) => d.gpu === gpu && d.target.kind === 'whole');
      const foreign = foreignOn(g, owned, ownsWhole);
      if (foreign.length) throw new PrepareError(`${gpu} holds devices the DRA driver did not make (${foreign.join('; ')}); it is not offered and takes no claim until they are removed`);
      const others = othersOn(inv, records, gpu, c.uid);
      const here = mine.filter((d) => d.gpu === gpu);
      const mix = [...others.devices, ...here];
      if (mix.some((d) => d.profile === null) && mix.length > 1) throw new PrepareError(`${gpu} cannot be passed through whole and hold vGPUs at once (${mix.map((d) => d.device).join(', ')}); the allocation is stale`);
      const inUse = new Map([...this.env.machine.inUse(inv), ...others.inUse]);
      const plan = planChange(inv, { gpu: g, desired: mix, inUse }, { nodeId: this.env.nodeName, vfioDriver: this.env.machine.vfioDriverFor(inv)(g), mine: new Set(here.map((d) => targetId(d.target))), what: `ResourceClaim ${c.namespace}/${c.name}` });
      return { gpu, plan };
    });
  }

  /**
   * Give each new mdev the UUID its plan creates, then write the record
   * (`preparing`) before anything is applied. A UUID another record still
   * names (its vGPU gone with a reboot) is taken from that record, which then
   * gets a new one at its own Prepare: one UUID, one owner.
   */
  private recordTargets(record: ClaimRecord, plans: { gpu: string; plan: ReturnType<typeof planChange> }[], inv: Inventory): void {
    for (const { gpu, plan } of plans) {
      const g = inv.gpus.find((x) => x.pci.address === gpu)!;
      const created = createdMdevs(plan, g);
      for (const d of record.devices) {
        if (d.gpu !== gpu || d.target.kind !== 'mdev' || present(g, d.target, d.profile)) continue;
        const next = created.shift();
        if (!next) throw new PrepareError(`internal error: the plan for ${gpu} creates no mdev for ${d.device}`);
        d.target = { kind: 'mdev', uuid: next.uuid, parent: next.parent };
      }
    }
    const uuids = new Set(record.devices.filter((d) => d.target.kind === 'mdev').map((d) => targetId(d.target)));
    for (const other of this.env.checkpoint.all()) {
      if (other.uid === record.uid || !other.devices.some((d) => d.target.kind === 'mdev' && uuids.has(d.target.uuid))) continue;
      this.env.checkpoint.put({ ...other, devices: other.devices.map((d) => (d.target.kind === 'mdev' && uuids.has(d.target.uuid) ? { ...d, target: { kind: 'mdev', uuid: '', parent: '' } } : d)) });
    }
    this.env.checkpoint.put(record);
  }

  /** vgpu_params from the claim's config, on each device that asks for them (read before write, read back). */
  private async applyParams(record: ClaimRecord): Promise<void> {
    const actions: Action[] = [];
    for (const d of record.devices) {
      if (d.params === null || d.target.kind === 'whole') continue;
      actions.push(d.target.kind === 'vf' ? { kind: 'set-vf-params', gpu: d.gpu, vf: d.target.address, params: d.params } : { kind: 'set-mdev-params', gpu: d.gpu, uuid: d.target.uuid, params: d.params });
    }
    if (actions.length === 0) return;
    const plan: Plan = { configName: 'dra', actions, blocked: [], undetermined: [], errors: [], gpus: [] };
    await applyChanges(this.env.machine, [plan], COMMAND, this.env.lockWaitMs ?? 30_000);
  }

  /** Read the node back: every device of the record is there (`prepared`) or gone (`removed`). */
  private async verify(record: ClaimRecord, want: 'prepared' | 'removed'): Promise<Inventory> {
    const inv = await this.env.machine.inventory({ mixedSizeMode: false });
    for (const d of record.devices) {
      const g = inv.gpus.find((x) => x.pci.address === d.gpu);
      const there = g ? present(g, d.target, d.profile) : false;
      if (there !== (want === 'prepared')) throw new PrepareError(`read-back: ${d.device} (${targetId(d.target)}) is ${there ? 'still there' : 'missing'} after the change`);
    }
    return inv;
  }

  private async writeOutputs(inv: Inventory, record: ClaimRecord, view: ClaimView): Promise<ClaimRecord> {
    const resources = new Map<string, string | null>();
    if (view.extendedResource) {
      for (const r of new Set(record.devices.flatMap((d) => d.requests))) {
        const cls = view.deviceClassOf(r);
        resources.set(r, cls ? await this.extendedResourceOf(cls) : null);
      }
    }
    const out = claimOutputs(
      inv,
      record,
      {
        iommufd: (d) => this.env.iommufd || d.requests.some((r) => view.config(r).iommufd),
        extendedResource: (request) => [...resources].find(([r]) => r.split('/')[0] === request)?.[1] ?? null,
        podClaimName: view.podClaimName,
        pcieRoot: (gpu) => this.env.pcieRoot(gpu),
      },
      this.env.metadata,
    );
    this.env.cdi.write(record.uid, out.devices);
    return { ...record, state: 'prepared', cdi: Object.fromEntries(record.devices.map((d, i) => [`${d.device}#${i}`, out.ids[i]!])) };
  }

  private async extendedResourceOf(className: string): Promise<string> {
    const cls = await this.env.api.getDeviceClass(className);
    return cls.spec?.extendedResourceName || `deviceclass.resource.kubernetes.io/${className}`;
  }

  /** Unprepare one claim; '' when done (or there was nothing), else the error (the kubelet retries). */
  async unprepare(c: ClaimMsg): Promise<string> {
    const record = this.env.checkpoint.get(c.uid);
    try {
      if (record) await this.remove(record);
      this.env.cdi.remove(c.uid);
      if (!record) this.env.metadata.remove({ namespace: c.namespace, name: c.name, uid: c.uid, podClaimName: null });
      return '';
    } catch (err) {
      const error = `${this.env.nodeName}: ${messageOf(err)}`;
      this.env.log.warn('NodeUnprepareResources failed', { claim: `${c.namespace}/${c.name}`, uid: c.uid, error });
      return error;
    }
  }

  /** Remove a recorded claim's devices, files and record (also for orphans whose claim is gone). */
  async remove(record: ClaimRecord): Promise<void> {
    const { env } = this;
    const marked: ClaimRecord = { ...record, state: 'unpreparing' };
    env.checkpoint.put(marked);
    const inv = await this.readNode();
    const records = env.checkpoint.all();
    const plans = [...new Set(record.devices.map((d) => d.gpu))].flatMap((gpu) => {
      const g = inv.gpus.find((x) => x.pci.address === gpu);
      if (!g) return []; // the GPU is gone, and its devices with it
      const others = othersOn(inv, records, gpu, record.uid);
      const inUse = removalInUse(env.machine, inv, g, records, others.inUse);
      const mine = new Set(record.devices.filter((d) => d.gpu === gpu).map((d) => targetId(d.target)));
      return [planChange(inv, { gpu: g, desired: others.devices, inUse }, { nodeId: env.nodeName, vfioDriver: env.machine.vfioDriverFor(inv)(g), mine, what: `removing ResourceClaim ${record.namespace}/${record.name}` })];
    });
    const writes = await applyChanges(env.machine, plans, COMMAND, env.lockWaitMs ?? 30_000);
    await this.verify({ ...marked, devices: marked.devices.filter((d) => !(d.target.kind === 'mdev' && d.target.uuid === '')) }, 'removed');
    env.cdi.remove(record.uid);
    env.metadata.remove({ namespace: record.namespace, name: record.name, uid: record.uid, podClaimName: null });
    env.checkpoint.remove(record.uid);
    env.log.info('unprepared', { claim: `${record.namespace}/${record.name}`, uid: record.uid, writes });
  }
}
