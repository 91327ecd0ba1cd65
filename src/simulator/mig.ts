/**
 * The driver's MIG behaviour for one simulated GPU: MIG mode (current and
 * pending), GPU instances at placements, and which instance a MIG-backed vGPU
 * may go on. No kinder than a real node (docs/profiles.md, "MIG-backed vGPU"):
 *
 * - switching the mode needs an idle GPU: no VFs, no vGPUs. Ampere tries a
 *   GPU reset and, when the GPU is busy, leaves the switch pending until the
 *   next reboot; Hopper and later refuse ("In use by another client");
 * - instances never overlap, start only where the profile allows, and a
 *   profile has at most its count; they vanish when the driver rebinds (VFs
 *   enabled or disabled) and at a reboot, as does MIG mode from Hopper on;
 * - an instance a vGPU sits on cannot be destroyed; MIG mode cannot be
 *   turned off while instances exist.
 */
import { SysfsError } from '../sysfs/errors.js';
import { instanceProfileFor, vgpusPerInstance, type GpuInstanceProfile, type MigGeometry } from '../model/mig.js';
import type { SimType } from './hardware.js';

export interface SimInstance {
  id: number;
  profile: GpuInstanceProfile;
  start: number;
}

/** MIG mode and GPU instances as plain data (for tests, and in a saved node's state). */
export interface SimMigState {
  current: boolean;
  pending: boolean;
  instances: { id: number; profile: string; start: number }[];
}

const inUse = (cmd: string) => new SysfsError('exec', cmd, 'EBUSY', 'In use by another client');

export class SimMig {
  current = false;
  pending = false;
  instances: SimInstance[] = [];

  constructor(readonly geometry: MigGeometry) {}

  /**
   * `nvidia-smi -mig 0|1`. `busy`: VFs or vGPUs on the GPU. Returns what
   * nvidia-smi would warn about, or null when the switch took effect.
   */
  setMode(enabled: boolean, busy: boolean, cmd: string): string | null {
    if (!enabled && this.instances.length) throw inUse(cmd);
    this.pending = enabled;
    if (this.current === enabled) return null;
    if (busy && !this.geometry.modeSwitchResets) throw inUse(cmd);
    if (busy) return `Warning: MIG mode is in pending ${enabled ? 'enable' : 'disable'} state: In use by another client`;
    this.current = enabled;
    return null;
  }

  /** `nvidia-smi mig -cgi <profile>:<start>` (profile by name or ID). */
  create(ref: string | number, start: number, cmd: string): SimInstance {
    if (!this.current) throw new SysfsError('exec', cmd, 'EINVAL', 'MIG mode is not enabled on this GPU');
    const profile = this.geometry.profiles.find((p) => p.name === String(ref) || (p.id !== null && String(p.id) === String(ref)));
    if (!profile) throw new SysfsError('exec', cmd, 'EINVAL', `no GPU instance profile ${ref} on this GPU`);
    if (!profile.starts.includes(start)) throw new SysfsError('exec', cmd, 'EINVAL', `${profile.name} cannot start at ${start} (placements ${profile.starts.join(',')})`);
    const overlaps = this.instances.some((i) => start < i.start + i.profile.size && i.start < start + profile.size);
    const count = this.instances.filter((i) => i.profile === profile).length;
    if (overlaps || count >= profile.max) throw new SysfsError('exec', cmd, 'ENOSPC', `Insufficient Resources: no room for ${profile.name} at ${start}`);
    let id = 1;
    while (this.instances.some((i) => i.id === id)) id++;
    const gi = { id, profile, start };
    this.instances.push(gi);
    this.instances.sort((a, b) => a.start - b.start);
    return gi;
  }

  /** `nvidia-smi mig -dgi -gi <id>`; `occupied`: a vGPU sits on it. */
  destroy(id: number, occupied: boolean, cmd: string): void {
    const gi = this.instances.find((i) => i.id === id);
    if (!gi) throw new SysfsError('exec', cmd, 'ENOENT', `no GPU instance ${id}`);
    if (occupied) throw inUse(cmd);
    this.instances = this.instances.filter((i) => i !== gi);
  }

  /** The instance one more vGPU of `t` would go on (the lowest one with room), given who sits where. */
  roomFor(t: SimType, occupants: (id: number) => SimType[]): SimInstance | undefined {
    if (!this.current || !t.migBacked) return undefined;
    const profile = instanceProfileFor(this.geometry, t.profile);
    const per = vgpusPerInstance(this.geometry, t);
    return this.instances.find((i) => {
      if (i.profile !== profile) return false;
      const on = occupants(i.id);
      return on.length < per && on.every((o) => o.framebufferMiB === t.framebufferMiB);
    });
  }

  state(): SimMigState {
    return { current: this.current, pending: this.pending, instances: this.instances.map((i) => ({ id: i.id, profile: i.profile.name, start: i.start })) };
  }

  /** Lay a saved state over this GPU's (its instances recreated where they were). */
  restore(state: SimMigState): void {
    this.instances = state.instances.map((i) => ({ id: i.id, start: i.start, profile: this.geometry.profiles.find((x) => x.name === i.profile)! }));
    if (this.instances.some((i) => !i.profile)) throw new Error('simulator state: a GPU instance of an unknown profile');
    this.current = state.current;
    this.pending = state.pending;
  }

  /** The driver rebinds (VFs enabled or disabled): instances are runtime state and go. */
  wipe(): void {
    this.instances = [];
  }

  /** A reboot: instances go; the mode survives on Ampere (InfoROM), a pending switch takes effect; from Hopper on it is off. */
  reboot(): void {
    this.instances = [];
    this.current = this.geometry.modeSwitchResets ? this.pending : false;
    this.pending = this.current;
  }
}
