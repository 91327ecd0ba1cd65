/**
 * The planning of one GPU against one config entry: what the steps read
 * (the GPU, the entry and its requests, the in-use set) and what they
 * produce (actions, blocked changes, errors, the outcome). plan.ts makes one
 * per assigned GPU and dispatches it to the mode's planner.
 */
import type { Gpu, Inventory } from '../inventory/types.js';
import type { ConfigEntry, ConfigFile } from '../spec/config.js';
import { vgpuRequestsOf, type VgpuRequest } from './requests.js';
import { describeAction, type Action, type Blocked, type GpuOutcome, type InUse, type PlanError, type Undetermined } from './types.js';

export class GpuPlan {
  readonly actions: Action[] = [];
  readonly blocked: Blocked[] = [];
  readonly undetermined: Undetermined[] = [];
  readonly errors: PlanError[] = [];
  readonly outcome: GpuOutcome;
  readonly requests: VgpuRequest[];
  readonly address: string;

  constructor(
    readonly inv: Inventory,
    readonly gpu: Gpu,
    readonly entry: ConfigEntry,
    private readonly file: ConfigFile,
    readonly inUse: InUse,
    readonly nodeId: string,
    /** The VFIO driver this GPU would be passed through with. */
    readonly vfioDriver: string,
  ) {
    this.address = gpu.pci.address;
    this.requests = vgpuRequestsOf(entry);
    const want: Record<string, number> = {};
    for (const r of this.requests) want[r.profile] = (want[r.profile] ?? 0) + r.count;
    this.outcome = { gpu: this.address, model: gpu.model.name, mode: entry.mode, want, kept: 0 };
  }

  /** The config can never be met on this GPU (nothing of the config is applied). */
  error(message: string): void {
    this.errors.push({ gpu: this.address, where: `${this.file.filename}:${this.entry.line}:${this.entry.column}: ${this.entry.path}`, message });
  }

  /** vmgpu cannot tell what `device` is; the GPU stays as it is. */
  undetermine(device: string, reason: string, fix: string): void {
    this.undetermined.push({ gpu: this.address, device, reason, fix });
  }

  /**
   * The GPU's target cannot be reached while a VM holds one of its devices, so
   * nothing on it changes now (its free vGPUs stay too): plan.ts drops its
   * actions. Set when a vGPU of the target cannot be placed, or a whole-GPU
   * mode waits for a device.
   */
  cannotFinish = false;

  /** Devices of this GPU in use now: the GPU, its companions, VFs and mdevs. */
  heldHere(): string[] {
    const g = this.gpu;
    const ids = [g.pci.address, ...g.companions, ...g.vfs.map((v) => v.address), ...g.mdevParents.flatMap((m) => m.instances.map((i) => i.uuid))];
    return ids.filter((d) => this.inUse.has(d));
  }

  block(device: string, change: string, reason: string, waitsFor: string[] = [device]): void {
    this.blocked.push({ gpu: this.address, device, change, reason, waitsFor });
  }

  /** A vGPU of the target cannot be placed until the GPU's held devices are released. */
  waitForTarget(device: string, change: string, reason: string): void {
    this.cannotFinish = true;
    this.block(device, change, reason, this.heldHere());
  }

  /** Record the change as blocked when the device is in use; true if it is. */
  blockIfInUse(device: string, change: Action): boolean {
    const who = this.inUse.get(device);
    if (who === undefined) return false;
    this.block(device, describeAction(change), `in use: ${who}`);
    return true;
  }
}
