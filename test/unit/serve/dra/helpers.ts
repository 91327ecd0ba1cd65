/**
 * A rig for the DRA driver's node side without a kubelet: a simulated node,
 * a machine over it whose backend can fail at a chosen write (a crash), the
 * checkpoint and files in a temporary directory, and claims served from a map
 * as the API server would.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PciIds } from '../../../../src/inventory/pciids.js';
import type { Inventory } from '../../../../src/inventory/types.js';
import { machineOf, type Machine } from '../../../../src/machine/machine.js';
import type { ClaimJson } from '../../../../src/serve/dra/api.js';
import { CdiWriter } from '../../../../src/serve/dra/cdi.js';
import { Checkpoint } from '../../../../src/serve/dra/checkpoint.js';
import { MetadataWriter } from '../../../../src/serve/dra/metadata.js';
import { deviceName, DRIVER_NAME } from '../../../../src/serve/dra/names.js';
import { Preparer } from '../../../../src/serve/dra/prepare.js';
import { memoryLogger } from '../../../../src/serve/kube/logger.js';
import { createSimulatedNode, SimHostTools, type SimNodeSpec, type SimulatedNode } from '../../../../src/simulator/index.js';
import type { SysfsBackend } from '../../../../src/sysfs/backend.js';
import { SysfsError } from '../../../../src/sysfs/errors.js';
import { SysfsPort } from '../../../../src/sysfs/port.js';

export const NODE = 'node-a';

/** A backend that fails the n-th write from now (1-based) as a crash would leave it: the write does not happen. */
class CrashingBackend implements SysfsBackend {
  private countdown = 0;
  writes = 0;
  constructor(private readonly inner: SysfsBackend) {}
  get description() {
    return this.inner.description;
  }
  crashAt(n: number): void {
    this.countdown = n;
  }
  display(root: Parameters<SysfsBackend['display']>[0], rel: string) {
    return this.inner.display(root, rel);
  }
  read(root: Parameters<SysfsBackend['read']>[0], rel: string) {
    return this.inner.read(root, rel);
  }
  write(root: Parameters<SysfsBackend['write']>[0], rel: string, data: string) {
    if (this.countdown > 0 && --this.countdown === 0) throw new SysfsError('write', this.display(root, rel), 'EIO', 'simulated crash');
    this.writes++;
    this.inner.write(root, rel, data);
  }
  readlink(root: Parameters<SysfsBackend['readlink']>[0], rel: string) {
    return this.inner.readlink(root, rel);
  }
  list(root: Parameters<SysfsBackend['list']>[0], rel: string) {
    return this.inner.list(root, rel);
  }
  kind(root: Parameters<SysfsBackend['kind']>[0], rel: string) {
    return this.inner.kind(root, rel);
  }
  exists(root: Parameters<SysfsBackend['exists']>[0], rel: string) {
    return this.inner.exists(root, rel);
  }
}

export interface Rig {
  sim: SimulatedNode;
  backend: CrashingBackend;
  machine: Machine;
  dir: string;
  claims: Map<string, ClaimJson>;
  /** A fresh Preparer over the same checkpoint directory (a restarted driver). */
  preparer(opts?: { draGpus?: string[] }): Preparer;
  inventory(): Promise<Inventory>;
  /** VF address -> profile, for VFs with a type. */
  vfs(): Promise<Record<string, string>>;
  checkpoint(): Checkpoint;
}

export function rig(spec: SimNodeSpec, simNode?: SimulatedNode, dir?: string): Rig {
  const sim = simNode ?? createSimulatedNode(spec);
  const backend = new CrashingBackend(sim.backend);
  const machine = machineOf({ port: new SysfsPort(backend), tools: new SimHostTools(sim), pciIds: PciIds.empty(), kernelRelease: sim.kernelRelease, catalogCache: undefined, vfioUsers: () => sim.vfioUsers(), commit: () => {}, lockPath: null });
  const work = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-dra-'));
  const claims = new Map<string, ClaimJson>();
  const r: Rig = {
    sim,
    backend,
    machine,
    dir: work,
    claims,
    preparer(opts = {}) {
      const cp = new Checkpoint(work);
      cp.load();
      return new Preparer({
        machine,
        nodeName: NODE,
        checkpoint: cp,
        api: {
          getClaim: async (_ns, name) => {
            const c = claims.get(name);
            if (!c) throw Object.assign(new Error(`resourceclaims ${name} not found`), { code: 404 });
            return c;
          },
          getDeviceClass: async (name) => ({ metadata: { name }, spec: { extendedResourceName: `nvidia.com/${name}` } }),
        },
        cdi: new CdiWriter(path.join(work, 'cdi')),
        metadata: new MetadataWriter(path.join(work, 'plugin')),
        iommufd: false,
        draGpus: () => new Set(opts.draGpus ?? sim.gpus.map((g) => g.pf.addr)),
        pcieRoot: () => 'pci0000:00',
        log: memoryLogger(),
      });
    },
    inventory: () => machine.inventory({ mixedSizeMode: false }),
    async vfs() {
      const inv = await r.inventory();
      return Object.fromEntries(inv.gpus.flatMap((g) => g.vfs.filter((v) => v.currentTypeId !== 0).map((v) => [v.address, v.currentProfile ?? `type ${v.currentTypeId}`])));
    },
    checkpoint() {
      const cp = new Checkpoint(work);
      cp.load();
      return cp;
    },
  };
  return r;
}

/** A claim allocated `devices` (device names on this node), one request `gpu` each unless given. */
export function claim(name: string, devices: { device: string; request?: string; shareId?: string }[], extra: { config?: Record<string, unknown>; extended?: boolean } = {}): ClaimJson {
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}`, ...(extra.extended ? { annotations: { 'resource.kubernetes.io/extended-resource-claim': 'true' } } : {}) },
    spec: { devices: { requests: [...new Set(devices.map((d) => d.request ?? 'gpu'))].map((n) => ({ name: n, exactly: { deviceClassName: 'L40S-12Q' } })) } },
    status: {
      allocation: {
        devices: {
          results: devices.map((d) => ({ request: d.request ?? 'gpu', driver: DRIVER_NAME, pool: NODE, device: d.device, ...(d.shareId ? { shareID: d.shareId } : {}) })),
          ...(extra.config ? { config: [{ source: 'FromClaim', opaque: { driver: DRIVER_NAME, parameters: { apiVersion: 'gpu.vmgpu.io/v1alpha1', kind: 'VgpuConfig', ...extra.config } } }] } : {}),
        },
      },
    },
  };
}

export const msg = (name: string) => ({ namespace: 'ns', name, uid: `uid-${name}` });
export { deviceName };
