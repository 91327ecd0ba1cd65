/**
 * The MIG steps of a plan, each read before and after: disable VFs, switch
 * MIG mode, create and destroy GPU instances. A step whose result is already
 * there is skipped, so a re-run after a crash converges.
 */
import { checkPciAddress, type PciAddress } from '../model/pci.js';
import type { GpuInstanceInfo, HostTools } from '../sysfs/host-tools.js';
import type { SysfsPort } from '../sysfs/port.js';
import type { Action } from '../plan/types.js';
import type { StepResult } from './apply.js';

export class ApplyError extends Error {
  override readonly name = 'ApplyError';
}

type MigAction = Extract<Action, { kind: 'disable-vfs' | 'set-mig-mode' | 'create-gpu-instance' | 'destroy-gpu-instance' }>;

const UNREAD = "cannot read them with nvidia-smi: make the host driver's nvidia-smi reachable to vmgpu";

export class MigSteps {
  constructor(
    private readonly port: SysfsPort,
    private readonly tools: HostTools,
    private readonly wrote: () => void,
  ) {}

  async run(a: MigAction): Promise<StepResult> {
    const pf = checkPciAddress(a.gpu);
    switch (a.kind) {
      case 'disable-vfs':
        return this.disableVfs(a, pf);
      case 'set-mig-mode':
        return this.setMode(a, pf);
      case 'create-gpu-instance':
        return this.create(a, pf);
      case 'destroy-gpu-instance':
        return this.destroy(a, pf);
    }
  }

  private async disableVfs(a: MigAction, pf: PciAddress): Promise<StepResult> {
    const now = () => Number(this.port.readPciAttr(pf, 'sriov_numvfs') ?? '0');
    if (now() === 0) return { action: a, outcome: 'skipped', detail: 'no VFs enabled' };
    this.wrote();
    // The vGPU manager takes VFs away only through sriov-manage's unbind-lock handshake where it is installed.
    if (this.port.sriovManageInstalled()) await this.tools.sriovManageDisable(pf);
    else this.port.writeSriovNumVfs(pf, 0);
    verify(now() === 0, `sriov_numvfs of ${pf} reads ${now()} after disabling the VFs`);
    return { action: a, outcome: 'done' };
  }

  private async setMode(a: Extract<Action, { kind: 'set-mig-mode' }>, pf: PciAddress): Promise<StepResult> {
    const before = await this.tools.migMode(pf);
    if (!before) throw new ApplyError(`MIG mode of ${pf}: ${UNREAD}`);
    if (before.current === a.enabled) return { action: a, outcome: 'skipped', detail: `already ${a.enabled ? 'on' : 'off'}` };
    this.wrote();
    await this.tools.setMigMode(pf, a.enabled);
    const after = await this.tools.migMode(pf);
    if (after?.current === a.enabled) return { action: a, outcome: 'done' };
    if (after?.pending === a.enabled) {
      throw new ApplyError(
        `MIG mode of ${pf} is pending ${a.enabled ? 'on' : 'off'}: the driver could not reset the GPU while something used it ("In use by another client"). ` +
          'Stop what uses it (nvidia-smi lists its processes; nvidia-persistenced and monitoring agents count) or reboot the node, then apply again',
      );
    }
    throw new ApplyError(`read-back check failed: MIG mode of ${pf} is ${after ? (after.current ? 'on' : 'off') : 'unreadable'} after turning it ${a.enabled ? 'on' : 'off'}`);
  }

  private async instances(pf: PciAddress): Promise<GpuInstanceInfo[]> {
    const list = await this.tools.gpuInstances(pf);
    if (!list) throw new ApplyError(`GPU instances of ${pf}: ${UNREAD}`);
    return list;
  }

  private async create(a: Extract<Action, { kind: 'create-gpu-instance' }>, pf: PciAddress): Promise<StepResult> {
    const there = (list: GpuInstanceInfo[]) => list.find((i) => i.start === a.start && i.profile === a.profile);
    const before = await this.instances(pf);
    const hit = there(before);
    if (hit) return { action: a, outcome: 'skipped', detail: `instance ${hit.id} is there` };
    this.wrote();
    await this.tools.createGpuInstance(pf, a.profileId ?? a.profile, a.start);
    const made = there(await this.instances(pf));
    verify(made !== undefined, `no ${a.profile} GPU instance at slot ${a.start} of ${pf} after creating it`);
    return { action: a, outcome: 'done', detail: `instance ${made!.id}` };
  }

  private async destroy(a: Extract<Action, { kind: 'destroy-gpu-instance' }>, pf: PciAddress): Promise<StepResult> {
    const hit = (await this.instances(pf)).find((i) => i.id === a.instanceId);
    if (!hit) return { action: a, outcome: 'skipped', detail: 'already gone' };
    if (hit.profile !== a.profile || hit.start !== a.start) {
      throw new ApplyError(`GPU instance ${a.instanceId} of ${pf} is now ${hit.profile} at slot ${hit.start}, not the ${a.profile} at slot ${a.start} the plan saw: plan again`);
    }
    this.wrote();
    await this.tools.destroyGpuInstance(pf, a.instanceId);
    verify(!(await this.instances(pf)).some((i) => i.id === a.instanceId), `GPU instance ${a.instanceId} of ${pf} is still there after destroying it`);
    return { action: a, outcome: 'done' };
  }
}

function verify(ok: boolean, what: string): void {
  if (!ok) throw new ApplyError(`read-back check failed: ${what}`);
}
