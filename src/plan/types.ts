/**
 * A plan: the ordered, minimal list of changes that takes a node from what
 * the inventory says to what a config asks for, plus what cannot be done now
 * (blocked by devices in use) and why the config cannot be met (errors).
 *
 * Actions name profiles, not type IDs: the applier resolves a name to the ID
 * the driver lists at the moment of writing (IDs differ per card and driver
 * version, and creatable lists change as the card fills).
 */

export type Action =
  /** Enable SR-IOV VFs on a PF (sriov-manage when installed, else sriov_numvfs). */
  | { kind: 'enable-vfs'; gpu: string; count: number }
  /** Turn mixed-size ("heterogeneous") vGPU mode on or off: before the first type is written. */
  | { kind: 'set-mixed-sizes'; gpu: string; enabled: boolean }
  /** Write 0 to a VF's current_vgpu_type. */
  | { kind: 'clear-vf-type'; gpu: string; vf: string; vfIndex: number; typeId: number; profile: string | null }
  /** Write the ID of `profile` to a VF's current_vgpu_type. */
  | { kind: 'set-vf-type'; gpu: string; vf: string; vfIndex: number; profile: string }
  /** Write a VF's vgpu_params. */
  | { kind: 'set-vf-params'; gpu: string; vf: string; params: string }
  /** Remove an mdev. */
  | { kind: 'remove-mdev'; gpu: string; uuid: string; parent: string; profile: string | null }
  /** Create an mdev of `profile` on `parent` with a stable UUID. */
  | { kind: 'create-mdev'; gpu: string; uuid: string; parent: string; profile: string }
  /** Write an mdev's vgpu_params. */
  | { kind: 'set-mdev-params'; gpu: string; uuid: string; params: string }
  /** Bind one function to a VFIO driver through driver_override (passthrough). */
  | { kind: 'bind-vfio'; gpu: string; device: string; driver: string; from: string | null }
  /** Give one function back to its host driver (clear driver_override, unbind, probe); `from` null: it is bound to no driver (an interrupted change). */
  | { kind: 'unbind-vfio'; gpu: string; device: string; from: string | null }
  /** Disable a PF's VFs (sriov-manage -d, else sriov_numvfs 0): MIG mode switches only on a GPU without them. */
  | { kind: 'disable-vfs'; gpu: string }
  /** Turn MIG mode on or off (nvidia-smi -mig). */
  | { kind: 'set-mig-mode'; gpu: string; enabled: boolean }
  /** Create a GPU instance (and its compute instance) of `profile` at memory slot `start`. */
  | { kind: 'create-gpu-instance'; gpu: string; profile: string; profileId: number | null; start: number }
  /** Destroy GPU instance `instanceId` (of `profile` at `start`, as the plan saw it): no vGPU sits on it. */
  | { kind: 'destroy-gpu-instance'; gpu: string; instanceId: number; profile: string; start: number };

export type ActionKind = Action['kind'];

/** A change the plan wants but cannot make now: a device is in use by a VM. */
export interface Blocked {
  gpu: string;
  /** The VF or GPU address, or mdev UUID, that is in use. */
  device: string;
  /** What would have been done. */
  change: string;
  /** Why it is blocked (who holds it, or the capacity it is waiting for). */
  reason: string;
  /** The devices in use whose release unblocks it (VF or GPU addresses, mdev UUIDs). */
  waitsFor: string[];
}

/**
 * A device whose state vmgpu cannot tell (a vGPU type ID no source names).
 * The GPU it is on is left exactly as it is: vmgpu never clears, replaces or
 * re-types what it cannot name.
 */
export interface Undetermined {
  gpu: string;
  /** The VF address or mdev UUID. */
  device: string;
  reason: string;
  /** How to let vmgpu name it. */
  fix: string;
}

/** Why a config cannot be met on this node. Any error means nothing is applied. */
export interface PlanError {
  /** The GPU concerned, when there is one. */
  gpu: string | null;
  /** Where in the config file: `config.yaml:12:5` and the key path. */
  where: string;
  message: string;
}

/** What a GPU will look like after the plan. */
export interface GpuOutcome {
  gpu: string;
  model: string;
  /** `dra`: left to the DRA driver. */
  mode: 'vgpu' | 'passthrough' | 'host' | 'untouched' | 'dra';
  /** profile -> count wanted. */
  want: Record<string, number>;
  /** vGPUs that already match and stay as they are. */
  kept: number;
}

export interface Plan {
  configName: string;
  actions: Action[];
  blocked: Blocked[];
  /** GPUs left untouched because vmgpu cannot tell what is on them. */
  undetermined: Undetermined[];
  errors: PlanError[];
  gpus: GpuOutcome[];
}

/** Devices held by running VMs: PCI addresses (VFs, GPUs) and mdev UUIDs, with who holds them. */
export type InUse = ReadonlyMap<string, string>;

/** One-line description of an action, for tables and logs. */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'enable-vfs':
      return `enable ${a.count} VFs on ${a.gpu}`;
    case 'set-mixed-sizes':
      return `${a.enabled ? 'enable' : 'disable'} mixed-size vGPU mode on ${a.gpu}`;
    case 'clear-vf-type':
      return `clear VF ${a.vf} (virtfn${a.vfIndex}, ${a.profile ?? `type ${a.typeId}`})`;
    case 'set-vf-type':
      return `set VF ${a.vf} (virtfn${a.vfIndex}) to ${a.profile}`;
    case 'set-vf-params':
      return `set vgpu_params of VF ${a.vf} to ${a.params || '(empty)'}`;
    case 'remove-mdev':
      return `remove mdev ${a.uuid} (${a.profile ?? 'unknown type'}) from ${a.parent}`;
    case 'create-mdev':
      return `create mdev ${a.uuid} (${a.profile}) on ${a.parent}`;
    case 'set-mdev-params':
      return `set vgpu_params of mdev ${a.uuid} to ${a.params || '(empty)'}`;
    case 'bind-vfio':
      return `bind ${a.device} to ${a.driver}${a.from ? ` (from ${a.from})` : ''}`;
    case 'unbind-vfio':
      return a.from ? `return ${a.device} from ${a.from} to its host driver` : `bind ${a.device}, now on no driver, to its host driver`;
    case 'disable-vfs':
      return `disable the VFs of ${a.gpu}`;
    case 'set-mig-mode':
      return `turn MIG mode ${a.enabled ? 'on' : 'off'} on ${a.gpu}`;
    case 'create-gpu-instance':
      return `create GPU instance ${a.profile} at slot ${a.start} on ${a.gpu}`;
    case 'destroy-gpu-instance':
      return `destroy GPU instance ${a.instanceId} (${a.profile} at slot ${a.start}) on ${a.gpu}`;
  }
}
