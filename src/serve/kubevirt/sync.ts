/**
 * KubeVirt sync: merge what every node's agent advertises (the Node
 * annotation `vmgpu.io/permitted-host-devices`) into
 * `KubeVirt.spec.configuration.permittedHostDevices`, all with
 * `externalResourceProvider: true`.
 *
 * - Never touches entries it did not add: the keys it added are remembered in
 *   the annotation `vmgpu.io/managed-permitted-host-devices` on the KubeVirt
 *   object; only those are ever removed (when no node advertises them).
 * - Idempotent: no write when nothing changes.
 * - Conflict-safe: update with the read resourceVersion, re-read and retry on 409.
 * - One writer: with `--watch`, a coordination.k8s.io Lease
 *   (`vmgpu-kubevirt-sync`) elects the leader among replicas.
 */
import { hostname } from 'node:os';
import type { Logger } from '../kube/logger.js';
import type { MediatedHostDevice, PciHostDevice, PermittedHostDevices } from './permitted.js';
import { backoffDelay, sleepUnlessAborted } from '../kube/backoff.js';
import { ANNOTATION_PERMITTED } from '../agent/desired.js';
import { V1MicroTime, type KubernetesListObject, type KubernetesObject, type V1Lease, type V1Node } from '@kubernetes/client-node';
import { Informer, type KubeObject } from '../kube/informer.js';
import { describeApiError, isKubeApiError, type Kube } from '../kube/kube.js';

export const ANNOTATION_MANAGED = 'vmgpu.io/managed-permitted-host-devices';
const LEASE_NAME = 'vmgpu-kubevirt-sync';

const pciKey = (e: { pciVendorSelector: string; resourceName: string }) => `pci|${e.pciVendorSelector.toUpperCase()}|${e.resourceName}`;
const mdevKey = (e: { mdevNameSelector: string; resourceName: string }) => `mdev|${e.mdevNameSelector}|${e.resourceName}`;

/** Union of the entries the nodes advertise, with the nodes that could not be read. */
export function collectAdvertised(nodes: Iterable<KubernetesObject>): { wanted: PermittedHostDevices; problems: string[] } {
  const pci = new Map<string, PciHostDevice>();
  const mdev = new Map<string, MediatedHostDevice>();
  const problems: string[] = [];
  for (const n of nodes) {
    const raw = n.metadata?.annotations?.[ANNOTATION_PERMITTED];
    if (raw === undefined) continue;
    let doc: Partial<PermittedHostDevices>;
    try {
      doc = JSON.parse(raw) as Partial<PermittedHostDevices>;
    } catch {
      problems.push(`node ${n.metadata?.name}: annotation ${ANNOTATION_PERMITTED} is not JSON; ignored`);
      continue;
    }
    for (const e of Array.isArray(doc.pciHostDevices) ? doc.pciHostDevices : []) {
      if (typeof e?.pciVendorSelector !== 'string' || typeof e.resourceName !== 'string' || !/^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$/.test(e.pciVendorSelector)) {
        problems.push(`node ${n.metadata?.name}: malformed pciHostDevices entry ${JSON.stringify(e)}; ignored`);
        continue;
      }
      pci.set(pciKey(e), { pciVendorSelector: e.pciVendorSelector.toUpperCase(), resourceName: e.resourceName, externalResourceProvider: true });
    }
    for (const e of Array.isArray(doc.mediatedDevices) ? doc.mediatedDevices : []) {
      if (typeof e?.mdevNameSelector !== 'string' || typeof e.resourceName !== 'string' || !e.mdevNameSelector) {
        problems.push(`node ${n.metadata?.name}: malformed mediatedDevices entry ${JSON.stringify(e)}; ignored`);
        continue;
      }
      mdev.set(mdevKey(e), { mdevNameSelector: e.mdevNameSelector, resourceName: e.resourceName, externalResourceProvider: true });
    }
  }
  const byName = <T extends { resourceName: string }>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
  return { wanted: { pciHostDevices: byName(pci), mediatedDevices: byName(mdev) }, problems };
}

interface KubeVirtObject extends KubeObject {
  spec?: { configuration?: { permittedHostDevices?: Partial<PermittedHostDevices> & Record<string, unknown> } & Record<string, unknown> } & Record<string, unknown>;
}

export interface MergeResult {
  permitted: PermittedHostDevices & Record<string, unknown>;
  managed: string[];
  added: string[];
  removed: string[];
  conflicts: string[];
}

/** Pure merge: existing entries + wanted, removing only managed entries no node wants. */
export function mergeManaged(existing: (Partial<PermittedHostDevices> & Record<string, unknown>) | undefined, managedBefore: readonly string[], wanted: PermittedHostDevices): MergeResult {
  const managed = new Set(managedBefore);
  const out: Pick<MergeResult, 'added' | 'removed' | 'conflicts'> = { added: [], removed: [], conflicts: [] };
  const next = new Set<string>();
  // One kind of entry: ours that no node wants any more go, the rest stay; a wanted entry not there yet is added and becomes ours.
  const merge = <T extends { resourceName: string; externalResourceProvider: boolean }>(entries: T[], keyOf: (e: T) => string, wantedEntries: T[]): T[] => {
    const want = new Map(wantedEntries.map((e) => [keyOf(e), e]));
    const kept = entries.filter((e) => {
      const k = keyOf(e);
      if (!managed.has(k) || want.has(k)) return true;
      out.removed.push(k);
      return false;
    });
    const have = new Set(kept.map(keyOf));
    for (const [k, e] of want) {
      if (!have.has(k)) {
        kept.push(e);
        out.added.push(k);
        next.add(k);
      } else if (managed.has(k)) next.add(k);
      for (const x of kept) if (x.resourceName === e.resourceName && x.externalResourceProvider !== true && !out.conflicts.some((c) => c.includes(e.resourceName))) out.conflicts.push(`${e.resourceName}: an entry without externalResourceProvider: true exists (virt-handler would serve it too); set externalResourceProvider: true on it`);
    }
    return kept;
  };
  const pciHostDevices = merge(existing?.pciHostDevices ?? [], pciKey, wanted.pciHostDevices);
  const mediatedDevices = merge(existing?.mediatedDevices ?? [], mdevKey, wanted.mediatedDevices);
  return { permitted: { ...(existing ?? {}), pciHostDevices, mediatedDevices }, ...out, managed: [...next].sort() };
}

export interface SyncOptions {
  kube: Kube;
  namespace: string;
  name: string;
  logger: Logger;
  /** Lease namespace (required for --watch). */
  leaseNamespace?: string;
  identity?: string;
  leaseDurationSeconds?: number;
  /** Delay to coalesce bursts of node changes (default 200 ms). */
  debounceMs?: number;
}

export interface SyncOutcome {
  changed: boolean;
  added: string[];
  removed: string[];
  conflicts: string[];
  problems: string[];
  attempts: number;
}

export class KubevirtSync {
  private readonly kvRef: { group: string; version: string; plural: string; namespace: string; name: string };
  private nodes: Informer<V1Node> | null = null;
  private kv: Informer<KubeVirtObject> | null = null;
  private readonly abort = new AbortController();
  private leader = false;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private again = false;
  private leaseLoop: Promise<void> | null = null;
  readonly stats = { syncs: 0, writes: 0 };

  constructor(private readonly opts: SyncOptions) {
    this.kvRef = { group: 'kubevirt.io', version: 'v1', plural: 'kubevirts', namespace: opts.namespace, name: opts.name };
  }

  isLeader(): boolean {
    return this.leader;
  }

  /** One sync from a fresh LIST of the nodes (the one-shot CLI). */
  async syncOnce(nodes?: Iterable<KubernetesObject>): Promise<SyncOutcome> {
    const list = nodes ?? (await this.opts.kube.core.listNode()).items;
    const { wanted, problems } = collectAdvertised(list);
    this.stats.syncs++;
    for (let attempt = 1; ; attempt++) {
      let kv: KubeVirtObject;
      try {
        kv = (await this.opts.kube.custom.getNamespacedCustomObject(this.kvRef)) as KubeVirtObject;
      } catch (err) {
        if (isKubeApiError(err, 404)) throw new Error(`KubeVirt ${this.opts.namespace}/${this.opts.name} does not exist; install KubeVirt or pass --kubevirt-namespace/--kubevirt-name`, { cause: err });
        throw err;
      }
      const managedRaw = kv.metadata?.annotations?.[ANNOTATION_MANAGED];
      let managedBefore: string[] = [];
      try {
        managedBefore = managedRaw ? (JSON.parse(managedRaw) as string[]) : [];
        if (!Array.isArray(managedBefore)) managedBefore = [];
      } catch {
        problems.push(`annotation ${ANNOTATION_MANAGED} on the KubeVirt object is not JSON; treating no entry as ours`);
      }
      const existing = kv.spec?.configuration?.permittedHostDevices;
      const m = mergeManaged(existing, managedBefore, wanted);
      const sameList = JSON.stringify(existing?.pciHostDevices ?? []) === JSON.stringify(m.permitted.pciHostDevices) && JSON.stringify(existing?.mediatedDevices ?? []) === JSON.stringify(m.permitted.mediatedDevices);
      const sameManaged = JSON.stringify([...managedBefore].sort()) === JSON.stringify(m.managed);
      if (sameList && sameManaged) return { changed: false, added: [], removed: [], conflicts: m.conflicts, problems, attempts: attempt };
      const next: KubeVirtObject = {
        ...kv,
        metadata: { ...kv.metadata, annotations: { ...kv.metadata?.annotations, [ANNOTATION_MANAGED]: JSON.stringify(m.managed) } },
        spec: { ...kv.spec, configuration: { ...kv.spec?.configuration, permittedHostDevices: m.permitted } },
      };
      try {
        await this.opts.kube.custom.replaceNamespacedCustomObject({ ...this.kvRef, body: next });
        this.stats.writes++;
        this.opts.logger.info('KubeVirt permittedHostDevices updated', { added: m.added, removed: m.removed, conflicts: m.conflicts, attempt });
        return { changed: true, added: m.added, removed: m.removed, conflicts: m.conflicts, problems, attempts: attempt };
      } catch (err) {
        if (isKubeApiError(err, 409) && attempt < 8) {
          this.opts.logger.info('KubeVirt object changed meanwhile; re-reading', { attempt });
          await sleepUnlessAborted(backoffDelay(attempt, 50, 2000), this.abort.signal);
          continue;
        }
        throw err;
      }
    }
  }

  /** Leader-elected continuous sync: watch nodes and the KubeVirt object, sync on change. */
  start(): void {
    if (!this.opts.leaseNamespace) throw new Error('the continuous KubeVirt sync needs a Lease namespace (--lease-namespace or POD_NAMESPACE)');
    this.leaseLoop = this.runLease();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    await this.leaseLoop;
    await this.stopWatching();
    await this.running;
  }

  private scheduleSync(): void {
    if (!this.leader || this.abort.signal.aborted) return;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.running) {
        this.again = true;
        return;
      }
      this.running = this.syncOnce(this.nodes ? this.nodes.list() : undefined)
        .catch((err: unknown) => {
          this.opts.logger.error('KubeVirt sync failed; retrying', { error: describeApiError(err) });
          this.again = true;
        })
        .finally(() => {
          this.running = null;
          if (this.again) {
            this.again = false;
            this.scheduleSync();
          }
        });
    }, this.opts.debounceMs ?? 200);
  }

  private startWatching(): void {
    const { kube } = this.opts;
    this.nodes = new Informer<V1Node>(kube, {
      path: '/api/v1/nodes',
      list: () => kube.core.listNode(),
      onChange: () => this.scheduleSync(),
      onError: (err) => this.opts.logger.warn('watching nodes failed; retrying', { error: err.message }),
    });
    const { group, version, plural, namespace, name } = this.kvRef;
    const fieldSelector = `metadata.name=${name}`;
    this.kv = new Informer<KubeVirtObject>(kube, {
      path: `/apis/${group}/${version}/namespaces/${namespace}/${plural}`,
      list: async () => (await kube.custom.listNamespacedCustomObject({ group, version, namespace, plural, fieldSelector })) as KubernetesListObject<KubeVirtObject>,
      fieldSelector,
      onChange: () => this.scheduleSync(),
      onError: (err) => this.opts.logger.warn('watching the KubeVirt object failed; retrying', { error: err.message }),
    });
    this.nodes.start();
    this.kv.start();
  }

  private async stopWatching(): Promise<void> {
    await this.nodes?.stop();
    await this.kv?.stop();
    this.nodes = null;
    this.kv = null;
  }

  // -------------------------------------------------------------- Lease

  private async runLease(): Promise<void> {
    const signal = this.abort.signal;
    const ns = this.opts.leaseNamespace!;
    const id = this.opts.identity ?? `${hostname()}_${process.pid}`;
    const dur = this.opts.leaseDurationSeconds ?? 15;
    const leases = this.opts.kube.coordination;
    let lastRenew = 0;
    while (!signal.aborted) {
      try {
        const now = new V1MicroTime(Date.now());
        let lease: V1Lease;
        try {
          lease = await leases.readNamespacedLease({ name: LEASE_NAME, namespace: ns });
        } catch (err) {
          if (!isKubeApiError(err, 404)) throw err;
          await leases.createNamespacedLease({
            namespace: ns,
            body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: LEASE_NAME, namespace: ns }, spec: { holderIdentity: id, leaseDurationSeconds: dur, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
          });
          lastRenew = Date.now();
          this.becomeLeader(true, id);
          await sleepUnlessAborted((dur * 1000) / 3, signal);
          continue;
        }
        const s = lease.spec ?? {};
        // Read back, MicroTime fields are strings (client-node does not parse them).
        const renewed = s.renewTime ? Date.parse(String(s.renewTime as unknown)) : NaN;
        const expired = Number.isNaN(renewed) || renewed + (s.leaseDurationSeconds ?? dur) * 1000 < now.getTime();
        if (s.holderIdentity === id || expired || !s.holderIdentity) {
          const transitions = (s.leaseTransitions ?? 0) + (s.holderIdentity === id ? 0 : 1);
          await leases.replaceNamespacedLease({
            name: LEASE_NAME,
            namespace: ns,
            body: { ...lease, spec: { ...s, holderIdentity: id, leaseDurationSeconds: dur, renewTime: now, acquireTime: s.holderIdentity === id ? s.acquireTime : now, leaseTransitions: transitions } },
          });
          lastRenew = Date.now();
          this.becomeLeader(true, id);
        } else {
          this.becomeLeader(false, id, s.holderIdentity);
        }
      } catch (err) {
        if (signal.aborted) break;
        this.opts.logger.warn('Lease renewal failed', { error: describeApiError(err) });
        if (this.leader && Date.now() - lastRenew > dur * 1000) this.becomeLeader(false, id);
      }
      await sleepUnlessAborted(this.leader ? (dur * 1000) / 3 : (dur * 1000) / 2, signal);
    }
    if (this.leader) this.becomeLeader(false, id);
  }

  private becomeLeader(yes: boolean, id: string, holder?: string): void {
    if (yes === this.leader) return;
    this.leader = yes;
    if (yes) {
      this.opts.logger.info('became the KubeVirt sync leader', { identity: id, lease: `${this.opts.leaseNamespace}/${LEASE_NAME}` });
      this.startWatching();
    } else {
      this.opts.logger.info('not the KubeVirt sync leader', { identity: id, holder: holder ?? null });
      void this.stopWatching();
    }
  }
}
