/**
 * The applier: executes a plan through the sysfs port, one verified step at
 * a time.
 *
 * - Read before write: a step whose result is already there is skipped, so a
 *   re-run after a crash at any point converges without stray vGPUs.
 * - Type IDs are resolved from the VF's creatable list, re-read just before
 *   each write; `0` is written first when a VF has another type.
 * - Every change is read back. A refusal with EBUSY means a VM holds the
 *   device: the step is reported as blocked and the rest goes on. Any other
 *   failure stops the run with the GPU, the step and the kernel's answer.
 */
import { parseCreatableVgpuTypes } from '../inventory/catalog.js';
import { stripVendorPrefix } from '../model/profile.js';
import { SysfsError, isSysfsError } from '../sysfs/errors.js';
import type { HostTools } from '../sysfs/host-tools.js';
import { parseDriverName, parseMdevUuid } from '../sysfs/names.js';
import { checkPciAddress, type PciAddress } from '../model/pci.js';
import type { SysfsPort } from '../sysfs/port.js';
import { describeAction, type Action, type Blocked, type Plan } from '../plan/types.js';

export interface ApplyOptions {
  port: SysfsPort;
  tools: HostTools;
  /** Retries for EBUSY / "Cannot obtain unbindLock" when enabling VFs. */
  enableRetries?: number;
  /** First backoff delay in ms (doubles each retry). */
  backoffMs?: number;
  /** Called after each step (for logs and progress). */
  onStep?: (step: StepResult) => void;
  sleep?: (ms: number) => Promise<void>;
}

export interface StepResult {
  action: Action;
  outcome: 'done' | 'skipped' | 'blocked' | 'failed';
  detail?: string;
}

export interface ApplyResult {
  steps: StepResult[];
  blocked: Blocked[];
  /** The failure that stopped the run, if any. */
  failure: { action: Action; message: string } | null;
  writes: number;
}

export class ApplyError extends Error {
  override readonly name = 'ApplyError';
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function applyPlan(plan: Plan, opts: ApplyOptions): Promise<ApplyResult> {
  if (plan.errors.length) throw new ApplyError(`refusing to apply a plan with ${plan.errors.length} error(s); nothing was written`);
  const a = new Applier(opts);
  const result: ApplyResult = { steps: [], blocked: [...plan.blocked], failure: null, writes: 0 };
  // GPU -> the device a VM took since the plan was made (the driver said EBUSY).
  const takenSincePlan = new Map<string, string>();
  for (const action of plan.actions) {
    let step: StepResult;
    try {
      step = await a.run(action);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (isSysfsError(err, 'EBUSY') && isDeviceStep(action)) {
        step = { action, outcome: 'blocked', detail: `the kernel refused with EBUSY: in use by a VM (${(err as SysfsError).path})` };
        result.blocked.push({ gpu: action.gpu, device: deviceOf(action), change: describeAction(action), reason: step.detail!, waitsFor: [deviceOf(action)] });
        if (!takenSincePlan.has(action.gpu)) takenSincePlan.set(action.gpu, deviceOf(action));
      } else if (takenSincePlan.has(action.gpu) && dependsOnCapacity(action)) {
        // A later step on a GPU whose vGPU a VM took meanwhile: it fails because that vGPU still holds its
        // capacity. Blocked, not failed: it is done by the next apply once the VM lets go.
        const held = takenSincePlan.get(action.gpu)!;
        step = { action, outcome: 'blocked', detail: `waits for ${held}, in use by a VM: ${message}` };
        result.blocked.push({ gpu: action.gpu, device: deviceOf(action), change: describeAction(action), reason: step.detail!, waitsFor: [held] });
      } else {
        step = { action, outcome: 'failed', detail: message };
        result.steps.push(step);
        opts.onStep?.(step);
        result.failure = { action, message: `${action.gpu}: ${describeAction(action)}: ${message}` };
        break;
      }
    }
    result.steps.push(step);
    opts.onStep?.(step);
  }
  result.writes = a.writes;
  return result;
}

/** Steps that need room on the GPU (or a vGPU an earlier such step makes): they fail while a VM holds what was to be removed. */
function dependsOnCapacity(a: Action): boolean {
  return a.kind === 'set-vf-type' || a.kind === 'set-vf-params' || a.kind === 'create-mdev' || a.kind === 'set-mdev-params' || a.kind === 'set-mixed-sizes';
}

function isDeviceStep(a: Action): boolean {
  return a.kind !== 'enable-vfs' && a.kind !== 'set-mixed-sizes';
}

function deviceOf(a: Action): string {
  switch (a.kind) {
    case 'clear-vf-type':
    case 'set-vf-type':
    case 'set-vf-params':
      return a.vf;
    case 'remove-mdev':
    case 'create-mdev':
    case 'set-mdev-params':
      return a.uuid;
    case 'bind-vfio':
    case 'unbind-vfio':
      return a.device;
    default:
      return a.gpu;
  }
}

class Applier {
  writes = 0;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly o: ApplyOptions) {
    this.sleep = o.sleep ?? defaultSleep;
  }

  private get port(): SysfsPort {
    return this.o.port;
  }

  async run(action: Action): Promise<StepResult> {
    switch (action.kind) {
      case 'enable-vfs':
        return this.enableVfs(action);
      case 'set-mixed-sizes':
        return this.setMixed(action);
      case 'clear-vf-type':
        return this.clearVf(action);
      case 'set-vf-type':
        return this.setVf(action);
      case 'set-vf-params':
        return this.setVfParams(action);
      case 'remove-mdev':
        return this.removeMdev(action);
      case 'create-mdev':
        return this.createMdev(action);
      case 'set-mdev-params':
        return this.setMdevParams(action);
      case 'bind-vfio':
        return this.bindVfio(action);
      case 'unbind-vfio':
        return this.unbindVfio(action);
    }
  }

  private done(action: Action, detail?: string): StepResult {
    return detail ? { action, outcome: 'done', detail } : { action, outcome: 'done' };
  }
  private skipped(action: Action, detail: string): StepResult {
    return { action, outcome: 'skipped', detail };
  }

  private verify(ok: boolean, what: string): void {
    if (!ok) throw new ApplyError(`read-back check failed: ${what}`);
  }

  private async enableVfs(a: Extract<Action, { kind: 'enable-vfs' }>): Promise<StepResult> {
    const pf = checkPciAddress(a.gpu);
    const current = Number(this.port.readPciAttr(pf, 'sriov_numvfs') ?? '0');
    if (current === a.count) return this.skipped(a, `${current} VFs already enabled`);
    if (current !== 0) throw new ApplyError(`${current} VFs are enabled, ${a.count} wanted; disable them first (write 0 to sriov_numvfs) when no VM uses them`);
    const retries = this.o.enableRetries ?? 5;
    let delay = this.o.backoffMs ?? 200;
    const viaTool = this.port.sriovManageInstalled();
    for (let attempt = 0; ; attempt++) {
      try {
        this.writes++;
        if (viaTool) await this.o.tools.sriovManageEnable(pf);
        else this.port.writeSriovNumVfs(pf, a.count);
        break;
      } catch (err) {
        const transient = isSysfsError(err, 'EBUSY') || (err instanceof Error && /unbindLock/i.test(err.message));
        if (!transient || attempt >= retries) throw err;
        await this.sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
    const after = Number(this.port.readPciAttr(pf, 'sriov_numvfs') ?? '0');
    this.verify(after === a.count, `sriov_numvfs of ${pf} reads ${after}, expected ${a.count}`);
    return this.done(a, viaTool ? 'via sriov-manage' : 'via sriov_numvfs');
  }

  private async setMixed(a: Extract<Action, { kind: 'set-mixed-sizes' }>): Promise<StepResult> {
    const pf = checkPciAddress(a.gpu);
    const now = await this.o.tools.heterogeneousMode(pf);
    if (now === a.enabled) return this.skipped(a, `already ${a.enabled ? 'on' : 'off'}`);
    this.writes++;
    await this.o.tools.setHeterogeneousMode(pf, a.enabled);
    const after = await this.o.tools.heterogeneousMode(pf);
    if (after !== undefined) this.verify(after === a.enabled, `mixed-size mode of ${pf} is ${after ? 'on' : 'off'}`);
    return this.done(a);
  }

  private currentType(vf: PciAddress): number {
    const t = this.port.readNvidiaAttr(vf, 'current_vgpu_type');
    if (t === undefined) throw new SysfsError('read', this.port.display('sys', `bus/pci/devices/${vf}/nvidia/current_vgpu_type`), 'ENOENT', 'the VF has no nvidia/ directory: is the vGPU manager driver loaded and the VF enabled?');
    const n = Number(t.trim());
    if (!Number.isInteger(n)) throw new ApplyError(`current_vgpu_type of ${vf} reads ${JSON.stringify(t.trim())}, not a number`);
    return n;
  }

  private clearType(vf: PciAddress): void {
    this.writes++;
    this.port.writeCurrentVgpuType(vf, 0);
    this.verify(this.currentType(vf) === 0, `current_vgpu_type of ${vf} is not 0 after clearing`);
  }

  private async clearVf(a: Extract<Action, { kind: 'clear-vf-type' }>): Promise<StepResult> {
    const vf = checkPciAddress(a.vf);
    if (this.currentType(vf) === 0) return this.skipped(a, 'already clear');
    this.clearType(vf);
    return this.done(a);
  }

  private async setVf(a: Extract<Action, { kind: 'set-vf-type' }>): Promise<StepResult> {
    const vf = checkPciAddress(a.vf);
    const current = this.currentType(vf);
    if (current !== 0) {
      const name = this.nameOfCurrent(vf, current);
      if (name === a.profile) return this.skipped(a, `already ${a.profile}`);
      this.clearType(vf);
    }
    const creatable = parseCreatableVgpuTypes(this.port.readNvidiaAttr(vf, 'creatable_vgpu_types') ?? '');
    const entry = creatable.find((e) => stripVendorPrefix(e.name) === a.profile);
    if (!entry) {
      throw new ApplyError(
        `${a.profile} is not creatable on VF ${vf} now (the driver lists: ${creatable.map((e) => stripVendorPrefix(e.name)).join(', ') || 'nothing'}); the GPU may be full or in a different size mode`,
      );
    }
    this.writes++;
    this.port.writeCurrentVgpuType(vf, entry.id);
    const after = this.currentType(vf);
    this.verify(after === entry.id, `current_vgpu_type of ${vf} reads ${after}, expected ${entry.id} (${a.profile})`);
    return this.done(a, `type ID ${entry.id}`);
  }

  /** Name of a VF's current type: from a sibling's creatable list is not possible when full, so compare by ID through the catalog of free siblings. */
  private nameOfCurrent(vf: PciAddress, id: number): string | null {
    const pf = this.port.readPciLink(vf, 'physfn');
    if (!pf) return null;
    for (const v of this.port.listVirtfns(checkPciAddress(pf))) {
      const text = this.port.readNvidiaAttr(v.address, 'creatable_vgpu_types');
      const hit = parseCreatableVgpuTypes(text ?? '').find((e) => e.id === id);
      if (hit) return stripVendorPrefix(hit.name);
    }
    return null;
  }

  private async setVfParams(a: Extract<Action, { kind: 'set-vf-params' }>): Promise<StepResult> {
    const vf = checkPciAddress(a.vf);
    if ((this.port.readNvidiaAttr(vf, 'vgpu_params') ?? '').trim() === a.params) return this.skipped(a, 'already set');
    this.writes++;
    this.port.writeVfVgpuParams(vf, a.params);
    this.verify((this.port.readNvidiaAttr(vf, 'vgpu_params') ?? '').trim() === a.params, `vgpu_params of ${vf}`);
    return this.done(a);
  }

  private async removeMdev(a: Extract<Action, { kind: 'remove-mdev' }>): Promise<StepResult> {
    const uuid = parseMdevUuid(a.uuid);
    if (!this.port.mdevExists(uuid)) return this.skipped(a, 'already gone');
    this.writes++;
    this.port.removeMdev(uuid);
    this.verify(!this.port.mdevExists(uuid), `mdev ${uuid} still exists after remove`);
    return this.done(a);
  }

  private async createMdev(a: Extract<Action, { kind: 'create-mdev' }>): Promise<StepResult> {
    const uuid = parseMdevUuid(a.uuid);
    const parent = checkPciAddress(a.parent);
    if (this.port.mdevExists(uuid)) {
      const info = this.port.readMdev(uuid);
      const name = info ? this.port.readMdevTypeAttr(checkPciAddress(info.parent), info.type, 'name') : undefined;
      if (name && stripVendorPrefix(name) === a.profile) return this.skipped(a, 'already exists');
      throw new ApplyError(`mdev ${uuid} exists with type ${name ?? 'unknown'}, not ${a.profile}`);
    }
    if (!this.port.hasMdevSupportedTypes(parent)) throw new ApplyError(`${parent} has no mdev_supported_types: is the vGPU manager driver loaded (and, on Ampere, are the VFs enabled)?`);
    const types = this.port.listMdevTypes(parent);
    const type = types.find((t) => stripVendorPrefix(this.port.readMdevTypeAttr(parent, t, 'name') ?? '') === a.profile);
    if (!type) throw new ApplyError(`${parent} offers no mdev type named ${a.profile}`);
    const avail = Number(this.port.readMdevTypeAttr(parent, type, 'available_instances') ?? '0');
    if (!(avail > 0)) throw new ApplyError(`no available instances of ${a.profile} on ${parent} (available_instances is 0)`);
    this.writes++;
    this.port.createMdev(parent, type, uuid);
    this.verify(this.port.mdevExists(uuid), `mdev ${uuid} does not exist after create`);
    return this.done(a, type);
  }

  private async setMdevParams(a: Extract<Action, { kind: 'set-mdev-params' }>): Promise<StepResult> {
    const uuid = parseMdevUuid(a.uuid);
    const now = this.port.readMdev(uuid)?.vgpuParams?.trim() ?? '';
    if (now === a.params) return this.skipped(a, 'already set');
    this.writes++;
    this.port.writeMdevVgpuParams(uuid, a.params);
    this.verify((this.port.readMdev(uuid)?.vgpuParams?.trim() ?? '') === a.params, `vgpu_params of mdev ${uuid}`);
    return this.done(a);
  }

  private async bindVfio(a: Extract<Action, { kind: 'bind-vfio' }>): Promise<StepResult> {
    const dev = checkPciAddress(a.device);
    const driver = parseDriverName(a.driver);
    const current = this.port.readPciLink(dev, 'driver');
    if (current === driver) return this.skipped(a, `already on ${driver}`);
    if (!this.port.driverRegistered(driver)) throw new ApplyError(`driver ${driver} is not loaded: run \`modprobe ${driver.replace(/-/g, '_')}\``);
    this.writes++;
    this.port.writeDriverOverride(dev, driver);
    if (current) {
      this.writes++;
      this.port.unbindDriver(dev);
    }
    this.writes++;
    this.port.probeDriver(dev);
    const after = this.port.readPciLink(dev, 'driver');
    this.verify(after === driver, `${dev} is bound to ${after ?? 'no driver'}, expected ${driver}`);
    return this.done(a);
  }

  private async unbindVfio(a: Extract<Action, { kind: 'unbind-vfio' }>): Promise<StepResult> {
    const dev = checkPciAddress(a.device);
    const current = this.port.readPciLink(dev, 'driver') ?? null;
    const override = this.port.readPciAttr(dev, 'driver_override');
    const overridden = override !== undefined && override !== '(null)' && override !== '';
    const onVfio = current !== null && /vfio/.test(current);
    if (current !== null && !onVfio && !overridden) return this.skipped(a, `already on ${current}`);
    if (overridden) {
      this.writes++;
      this.port.writeDriverOverride(dev, null);
    }
    if (onVfio) {
      this.writes++;
      this.port.unbindDriver(dev);
    }
    // Unbound (now, or left so by an interrupted run): let the kernel probe its host driver.
    if (current === null || onVfio) {
      this.writes++;
      this.port.probeDriver(dev);
    }
    const after = this.port.readPciLink(dev, 'driver');
    this.verify(!!after && !/vfio/.test(after), `${dev} is bound to ${after ?? 'no driver'} after returning it to its host driver`);
    return this.done(a, `now on ${after}`);
  }
}
