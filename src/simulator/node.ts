/**
 * A simulated GPU node: the kernel's PCI/SR-IOV/mdev/VFIO sysfs and the NVIDIA
 * vGPU manager's behaviour, in memory, behind the same SysfsBackend as a real
 * host. See docs/simulator.md for what is modelled and what is not.
 *
 * This class is the node's face for tests, the CLI and the host tools
 * (tools.ts). The driver's state and its changes are in kernel.ts, its
 * capacity rules in rules.ts, the GPUs a spec asks for in create.ts, the files
 * it shows in tree.ts, and its saved form in snapshot.ts.
 */
import { SysfsError } from '../sysfs/errors.js';
import { SysfsPort } from '../sysfs/port.js';
import type { VfioUser } from '../sysfs/vfio-users.js';
import { createGpus } from './create.js';
import type { SimDriver } from './hardware.js';
import { parseHeldDevice, SimKernel } from './kernel.js';
import type { SimMig, SimMigState } from './mig.js';
import { checkNvlinkGroups, renderNvidiaSmiTopology } from './nvlink.js';
import { occupants } from './rules.js';
import { checkStateVersion, restoreState, snapshotState, unconfigured, type SimState } from './snapshot.js';
import type { SimGpu, SimNodeSpec, WriteRecord } from './state.js';
import { SimTree } from './tree.js';
import { VirtualBackend, type Trees } from './vfs.js';

export class SimulatedNode {
  readonly driver: SimDriver;
  readonly kernelRelease: string;
  readonly vgpuHostDriver: boolean;
  readonly iommu: boolean;
  readonly iommufd: boolean;
  readonly backend: VirtualBackend;
  readonly port: SysfsPort;
  readonly gpus: SimGpu[];
  private readonly log: WriteRecord[] = [];
  private readonly kernel: SimKernel;
  private readonly tree: SimTree;

  /** A node as its spec describes it; given `saved` (restoreNode), the spec's hardware in the state saved. */
  constructor(
    readonly spec: SimNodeSpec,
    saved?: SimState,
  ) {
    this.kernel = new SimKernel(spec, () => this.tree.invalidate());
    this.tree = new SimTree(this.kernel, () => this.backend.forget());
    this.driver = this.kernel.driver;
    this.kernelRelease = this.kernel.kernelRelease;
    this.vgpuHostDriver = this.kernel.vgpuHostDriver;
    this.iommu = this.kernel.iommu;
    this.iommufd = this.kernel.iommufd;
    this.gpus = this.kernel.gpus;
    this.backend = new VirtualBackend(
      `the simulator (driver ${this.driver.version})`,
      () => this.trees(),
      (root, rel, data, error) => this.log.push({ path: this.backend.display(root, rel), data, error: error ? error.code : null }),
    );
    this.port = new SysfsPort(this.backend);
    createGpus(this.kernel, saved ? unconfigured(spec) : spec);
    checkNvlinkGroups(spec.nvlink, this.gpus.length);
    if (saved) restoreState(this.kernel, saved);
  }

  /** The current file trees (rendered again after a structural change). */
  trees(): Trees {
    return this.tree.current();
  }

  /** The node's state (see snapshot.ts). */
  snapshot(): SimState {
    return snapshotState(this.spec, this.kernel);
  }

  // ------------------------------------------------------------ test and CLI controls

  /** Mark a VF, passthrough GPU (PCI address) or mdev (UUID) as held by a running VM. */
  hold(id: string): void {
    this.kernel.held.add(parseHeldDevice(id));
  }
  release(id: string): void {
    this.kernel.held.delete(parseHeldDevice(id));
  }
  heldDevices(): string[] {
    return [...this.kernel.held].sort();
  }
  /**
   * The simulated VMs as a host sees them: one QEMU process per held device,
   * with the device's VFIO group open (and its cdev, when it has one).
   */
  vfioUsers(): VfioUser[] {
    const out: VfioUser[] = [];
    for (const [i, id] of this.heldDevices().entries()) {
      const pid = 40000 + i;
      const command = 'qemu-system-x86_64';
      const fn = this.kernel.fnByAddr(id);
      const mdev = fn ? undefined : this.gpus.flatMap((g) => [...g.mdevs.values()]).find((m) => m.uuid === id);
      const group = fn?.group ?? mdev?.group ?? null;
      if (group !== null) out.push({ pid, command, kind: 'group', id: String(group) });
      if (fn?.vfio !== null && fn?.vfio !== undefined) out.push({ pid, command, kind: 'cdev', id: `vfio${fn.vfio}` });
    }
    return out;
  }
  /** Number of write attempts (successful or not) made through the backend or host tools. */
  writes(): number {
    return this.log.length;
  }
  writeLog(): readonly WriteRecord[] {
    return this.log;
  }
  /** The GPU falls off the bus (as after an Xid 79): it and its VFs and mdevs vanish. */
  removeDevice(pf: string): void {
    this.kernel.gpuByPf(pf).present = false;
    this.kernel.invalidate();
  }
  restoreDevice(pf: string): void {
    this.kernel.gpuByPf(pf).present = true;
    this.kernel.invalidate();
  }
  /**
   * Remove a device node (or restore it): a number is an IOMMU group's
   * `/dev/vfio/<group>`; a string a path under /dev (`vfio/devices/vfio3`,
   * `vfio/vfio`, `iommu`).
   */
  removeDevNode(node: number | string): void {
    this.kernel.removedDevNodes.add(String(node));
    this.kernel.invalidate();
  }
  restoreDevNode(node: number | string): void {
    this.kernel.removedDevNodes.delete(String(node));
    this.kernel.invalidate();
  }
  /** Simulate a reboot: VFs, vGPU types and mdevs vanish; drivers go back to their defaults. */
  reboot(): void {
    for (const g of this.gpus) {
      g.vfs = [];
      g.mdevs.clear();
      g.heterogeneous = false;
      g.present = true;
      g.mig?.reboot();
      for (const fn of [g.pf, g.audio]) {
        if (!fn) continue;
        fn.override = null;
        fn.driver = this.kernel.defaultDriver(fn);
        fn.vfio = null;
      }
    }
    this.kernel.held.clear();
    this.kernel.invalidate();
  }

  // ------------------------------------------------------------ host tools (sriov-manage, nvidia-smi)

  /** `sriov-manage -e <pf>`: enables all VFs and resets mixed-size mode, retrying the unbind lock itself. */
  sriovManageEnable(pf: string): void {
    const g = this.kernel.gpuByPf(pf);
    this.logExec(`sriov-manage -e ${pf}`);
    if (!this.kernel.sriovManage) throw new SysfsError('exec', 'sriov-manage', 'ENOENT');
    if (g.vfs.length === 0) this.kernel.enableVfs(g, g.model.totalVfs);
    g.heterogeneous = false;
    this.kernel.invalidate();
  }

  /** `sriov-manage -d <pf>`: clears the VFs' types and disables them (the driver rebinds: GPU instances go). */
  sriovManageDisable(pf: string): void {
    const g = this.kernel.gpuByPf(pf);
    this.logExec(`sriov-manage -d ${pf}`);
    if (!this.kernel.sriovManage) throw new SysfsError('exec', 'sriov-manage', 'ENOENT');
    if (this.kernel.vgpusHeld(g)) throw new SysfsError('exec', `sriov-manage -d ${pf}`, 'EBUSY', 'Cannot obtain unbindLock');
    this.kernel.disableVfs(g);
  }

  /** What `nvidia-smi topo -m` and `--query-gpu=index,pci.bus_id` print; undefined without nvidia-smi. */
  nvidiaSmiTopology(): { topo: string; busIds: string } | undefined {
    if (!this.kernel.nvidiaSmi) return undefined;
    const gpus = this.gpus.map((g) => ({ address: g.pf.addr, numaNode: g.pf.numa, visible: g.present && g.pf.driver === 'nvidia' }));
    return renderNvidiaSmiTopology(gpus, this.spec.nvlink ?? []);
  }

  /** Mixed-size mode as `nvidia-smi -q` reports it; undefined without nvidia-smi. */
  heterogeneousMode(pf: string): boolean | undefined {
    if (!this.kernel.nvidiaSmi) return undefined;
    return this.kernel.gpuByPf(pf).heterogeneous;
  }

  /** `nvidia-smi vgpu -shm 1`: only before the first type is written. */
  setHeterogeneousMode(pf: string, enabled: boolean): void {
    const g = this.kernel.gpuByPf(pf);
    this.logExec(`nvidia-smi vgpu -shm ${enabled ? 1 : 0} -i ${pf}`);
    this.needNvidiaSmi();
    if (g.vfs.some((v) => v.typeId !== 0)) {
      throw new SysfsError('exec', `nvidia-smi vgpu -shm ${enabled ? 1 : 0} -i ${pf}`, 'EBUSY', 'vGPUs are configured on this GPU; clear them first');
    }
    g.heterogeneous = enabled;
  }

  /** MIG mode as `nvidia-smi --query-gpu=mig.mode.current,mig.mode.pending` reports it; undefined without nvidia-smi or MIG. */
  migMode(pf: string): { current: boolean; pending: boolean } | undefined {
    const mig = this.kernel.gpuByPf(pf).mig;
    return this.kernel.nvidiaSmi && mig ? { current: mig.current, pending: mig.pending } : undefined;
  }

  /** `nvidia-smi -i <pf> -mig 0|1` (see mig.ts for when the driver refuses or leaves it pending). */
  setMigMode(pf: string, enabled: boolean): void {
    const cmd = `nvidia-smi -i ${pf} -mig ${enabled ? 1 : 0}`;
    const { g, mig } = this.migCommand(pf, cmd);
    mig.setMode(enabled, g.vfs.length > 0 || g.mdevs.size > 0, cmd);
    this.kernel.invalidate();
  }

  /** `nvidia-smi mig -lgi`: the GPU instances; undefined without nvidia-smi or MIG. */
  gpuInstances(pf: string): { id: number; profile: string; profileId: number; start: number; size: number }[] | undefined {
    const mig = this.kernel.gpuByPf(pf).mig;
    if (!this.kernel.nvidiaSmi || !mig) return undefined;
    return mig.instances.map((i) => ({ id: i.id, profile: i.profile.name, profileId: i.profile.id ?? 0, start: i.start, size: i.profile.size }));
  }

  /** `nvidia-smi mig -i <pf> -cgi <profile>:<start> -C`. */
  createGpuInstance(pf: string, profile: string | number, start: number): void {
    const cmd = `nvidia-smi mig -i ${pf} -cgi ${profile}:${start} -C`;
    this.migCommand(pf, cmd).mig.create(profile, start, cmd);
    this.kernel.invalidate();
  }

  /** `nvidia-smi mig -i <pf> -dci -gi <id>` and `-dgi -gi <id>`: refused while a vGPU sits on the instance. */
  destroyGpuInstance(pf: string, id: number): void {
    const cmd = `nvidia-smi mig -i ${pf} -dgi -gi ${id}`;
    const { g, mig } = this.migCommand(pf, cmd);
    mig.destroy(id, occupants(g, id).length > 0, cmd);
    this.kernel.invalidate();
  }

  /** For tests: MIG mode and GPU instances of a GPU, as the driver has them. */
  migState(pf: string): SimMigState | null {
    return this.kernel.gpuByPf(pf).mig?.state() ?? null;
  }

  /** For tests: the GPU instance the vGPU on a VF (address) or mdev (UUID) sits on. */
  gpuInstanceOf(id: string): number | null {
    for (const g of this.gpus) {
      const vf = g.vfs.find((v) => v.fn.addr === id.toLowerCase());
      if (vf) return vf.gi;
      const m = g.mdevs.get(id.toLowerCase());
      if (m) return m.gi;
    }
    return null;
  }

  /** `nvidia-smi vgpu -s -i <pf>`-style listing: supported types with hex IDs; undefined without nvidia-smi. */
  nvidiaSmiSupportedTypes(pf: string): string | undefined {
    if (!this.kernel.nvidiaSmi) return undefined;
    const g = this.kernel.gpuByPf(pf);
    const lines = [`GPU ${pf.replace(/^([0-9a-f]{4})/, '0000$1').toUpperCase()}`];
    for (const t of g.types) {
      lines.push(`    vGPU Type ID                      : 0x${t.id.toString(16)}`);
      lines.push(`    Name                              : ${t.name}`);
    }
    return lines.join('\n') + '\n';
  }

  /** A host tool's run, in the write log. */
  private logExec(cmd: string): void {
    this.log.push({ path: `exec ${cmd}`, data: '', error: null });
  }

  private needNvidiaSmi(): void {
    if (!this.kernel.nvidiaSmi) throw new SysfsError('exec', 'nvidia-smi', 'ENOENT', 'nvidia-smi is not installed or not reachable');
  }

  /** An nvidia-smi MIG command's run (logged), on a GPU that has MIG. */
  private migCommand(pf: string, cmd: string): { g: SimGpu; mig: SimMig } {
    this.logExec(cmd);
    const g = this.kernel.gpuByPf(pf);
    this.needNvidiaSmi();
    if (!g.mig) throw new SysfsError('exec', cmd, 'EINVAL', 'Not Supported');
    return { g, mig: g.mig };
  }
}

export function snapshotNode(node: SimulatedNode): SimState {
  return node.snapshot();
}

/** Rebuild a node from a snapshot (the spec recreates the hardware; the state is laid over it). */
export function restoreNode(state: SimState): SimulatedNode {
  checkStateVersion(state);
  return new SimulatedNode(state.spec, state);
}
