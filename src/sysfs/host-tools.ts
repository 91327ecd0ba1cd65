/**
 * NVIDIA's host tools, the one other way vmgpu changes a GPU: `sriov-manage`
 * (enable VFs) and `nvidia-smi` (catalog fallback, mixed-size mode). They live
 * beside the sysfs port because they act on the same hardware; the simulator
 * implements the same interface.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SysfsError } from './errors.js';
import { checkPciAddress, type PciAddress } from '../model/pci.js';
import { nvlinkPairsFrom } from './topo-output.js';
import { IN_USE, NO_INSTANCES, parseGpuInstances, parseMigMode, type GpuInstanceInfo, type MigModeInfo } from './mig-output.js';

export type { GpuInstanceInfo, MigModeInfo } from './mig-output.js';

const run = promisify(execFile);

export interface HostTools {
  /** Run `sriov-manage -e <pf>`; resolves when VFs are enabled. Throws SysfsError (op exec). */
  sriovManageEnable(pf: PciAddress): Promise<void>;
  /** `nvidia-smi vgpu -s -v -i <pf>` output (supported types, IDs in hex), or undefined if the tool is missing. */
  nvidiaSmiSupportedTypes(pf: PciAddress): Promise<string | undefined>;
  /** Mixed-size ("heterogeneous") vGPU mode of a GPU; undefined when it cannot be told. */
  heterogeneousMode(pf: PciAddress): Promise<boolean | undefined>;
  /** `nvidia-smi vgpu -shm 0|1 -i <pf>`. */
  setHeterogeneousMode(pf: PciAddress, enabled: boolean): Promise<void>;
  /** `sriov-manage -d <pf>`: disable the VFs (the driver takes a raw sriov_numvfs write of 0 only through it). */
  sriovManageDisable(pf: PciAddress): Promise<void>;
  /** MIG mode, current and pending; undefined when it cannot be told. */
  migMode(pf: PciAddress): Promise<MigModeInfo | undefined>;
  /** `nvidia-smi -i <pf> -mig 0|1`. A switch the driver cannot make now stays pending (read migMode after). */
  setMigMode(pf: PciAddress, enabled: boolean): Promise<void>;
  /** `nvidia-smi mig -lgi -i <pf>`; undefined when it cannot be told. */
  gpuInstances(pf: PciAddress): Promise<GpuInstanceInfo[] | undefined>;
  /** `nvidia-smi mig -i <pf> -cgi <profile>:<start> -C`: one GPU instance (with its compute instance) at a placement. */
  createGpuInstance(pf: PciAddress, profile: string | number, start: number): Promise<void>;
  /** `nvidia-smi mig -i <pf> -dci -gi <id>`, then `-dgi -gi <id>`. EBUSY while a vGPU sits on it. */
  destroyGpuInstance(pf: PciAddress, id: number): Promise<void>;
  /**
   * GPU pairs joined by NVLink (`nvidia-smi topo -m`), among `onNvidia` (the
   * GPUs the nvidia driver holds, which are all nvidia-smi sees); undefined
   * when it cannot be told. Read-only.
   */
  nvlinkPairs(onNvidia: readonly PciAddress[]): Promise<[PciAddress, PciAddress][] | undefined>;
}

export interface RealHostToolsOptions {
  /** Host path of sriov-manage (from SysfsPort.sriovManagePath()). */
  sriovManage: string;
  /** nvidia-smi command; default `nvidia-smi` on PATH; null when it is not reachable (`nvidiaSmiMissing` says why). */
  nvidiaSmi?: string | null;
  nvidiaSmiMissing?: string;
  /** LD_LIBRARY_PATH for nvidia-smi: a directory holding the host driver's libnvidia-ml.so.1 (driver-root.ts). */
  libraryPath?: string;
  timeoutMs?: number;
}

/** Runs the real tools on the host. */
export class RealHostTools implements HostTools {
  private nvlinkMemo: { key: string; pairs: [PciAddress, PciAddress][] } | null = null;

  constructor(private readonly opts: RealHostToolsOptions) {}

  async sriovManageEnable(pf: PciAddress): Promise<void> {
    await this.exec(this.opts.sriovManage, ['-e', checkPciAddress(pf)], 120_000);
  }

  async nvidiaSmiSupportedTypes(pf: PciAddress): Promise<string | undefined> {
    try {
      return await this.exec(this.nvidiaSmi(), ['vgpu', '-s', '-v', '-i', checkPciAddress(pf)]);
    } catch (err) {
      if (err instanceof SysfsError && err.code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async heterogeneousMode(pf: PciAddress): Promise<boolean | undefined> {
    let out: string;
    try {
      out = await this.exec(this.nvidiaSmi(), ['-q', '-i', checkPciAddress(pf)]);
    } catch {
      return undefined;
    }
    const m = /vGPU Heterogeneous Mode\s*:\s*(\w+)/i.exec(out);
    if (!m) return undefined;
    return /^enabled$/i.test(m[1]!);
  }

  async setHeterogeneousMode(pf: PciAddress, enabled: boolean): Promise<void> {
    await this.exec(this.nvidiaSmi(), ['vgpu', '-shm', enabled ? '1' : '0', '-i', checkPciAddress(pf)]);
  }

  async sriovManageDisable(pf: PciAddress): Promise<void> {
    await this.exec(this.opts.sriovManage, ['-d', checkPciAddress(pf)], 120_000);
  }

  async migMode(pf: PciAddress): Promise<MigModeInfo | undefined> {
    try {
      return parseMigMode(await this.smi(['--query-gpu=mig.mode.current,mig.mode.pending', '--format=csv,noheader', '-i', checkPciAddress(pf)]));
    } catch {
      return undefined;
    }
  }

  async setMigMode(pf: PciAddress, enabled: boolean): Promise<void> {
    await this.smi(['-i', checkPciAddress(pf), '-mig', enabled ? '1' : '0']);
  }

  async gpuInstances(pf: PciAddress): Promise<GpuInstanceInfo[] | undefined> {
    try {
      return parseGpuInstances(await this.smi(['mig', '-lgi', '-i', checkPciAddress(pf)]));
    } catch (err) {
      return err instanceof SysfsError && NO_INSTANCES.test(err.detail ?? '') ? [] : undefined;
    }
  }

  async createGpuInstance(pf: PciAddress, profile: string | number, start: number): Promise<void> {
    const name = String(profile);
    if (!/^([0-9]{1,3}|[0-9]g\.[0-9]{1,4}gb(\+[a-z.]{1,8})?)$/.test(name) || !Number.isInteger(start) || start < 0 || start > 63) {
      throw new SysfsError('exec', 'nvidia-smi mig -cgi', 'EINVAL', `${JSON.stringify(name)}:${start} is not a GPU instance profile and placement`);
    }
    await this.smi(['mig', '-i', checkPciAddress(pf), '-cgi', `${name}:${start}`, '-C']);
  }

  async destroyGpuInstance(pf: PciAddress, id: number): Promise<void> {
    if (!Number.isInteger(id) || id < 0 || id > 1000) throw new SysfsError('exec', 'nvidia-smi mig -dgi', 'EINVAL', `${id} is not a GPU instance ID`);
    const gi = String(id);
    // The compute instances first (an instance without any is fine); then the GPU instance, whose refusal counts.
    await this.smi(['mig', '-i', checkPciAddress(pf), '-dci', '-gi', gi]).catch(() => undefined);
    await this.smi(['mig', '-i', checkPciAddress(pf), '-dgi', '-gi', gi]);
  }

  /** NVLink is wiring: read again only when the set of GPUs nvidia-smi sees changes (two nvidia-smi runs per read). */
  async nvlinkPairs(onNvidia: readonly PciAddress[]): Promise<[PciAddress, PciAddress][] | undefined> {
    const key = [...onNvidia].sort().join(',');
    if (this.nvlinkMemo?.key === key) return this.nvlinkMemo.pairs;
    try {
      const pairs = nvlinkPairsFrom(await this.smi(['topo', '-m']), await this.smi(['--query-gpu=index,pci.bus_id', '--format=csv,noheader']));
      if (pairs) this.nvlinkMemo = { key, pairs };
      return pairs;
    } catch {
      return undefined;
    }
  }

  /** nvidia-smi for MIG: it says why on stdout as often as on stderr, and "In use by another client" is the driver's EBUSY. */
  private async smi(args: string[]): Promise<string> {
    const cmd = this.nvidiaSmi();
    if (cmd === null) throw new SysfsError('exec', `nvidia-smi ${args.join(' ')}`, 'ENOENT', this.opts.nvidiaSmiMissing ?? 'nvidia-smi is not reachable');
    try {
      const { stdout } = await run(cmd, args, { timeout: this.opts.timeoutMs ?? 30_000, maxBuffer: 4 << 20, env: this.env() });
      return stdout;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
      const said = `${e.stderr ?? ''}\n${e.stdout ?? ''}`.trim() || (e.message ?? '');
      const code = IN_USE.test(said) ? 'EBUSY' : typeof e.code === 'string' ? e.code : 'EIO';
      throw new SysfsError('exec', `${cmd} ${args.join(' ')}`, code, said.slice(0, 500));
    }
  }

  /** The host driver's libraries for its tools (--driver-root), when they are not on the default path. */
  private env(): NodeJS.ProcessEnv {
    return this.opts.libraryPath ? { ...process.env, LD_LIBRARY_PATH: this.opts.libraryPath } : process.env;
  }

  private nvidiaSmi(): string | null {
    return this.opts.nvidiaSmi === undefined ? 'nvidia-smi' : this.opts.nvidiaSmi;
  }

  private async exec(cmd: string | null, args: string[], timeout = this.opts.timeoutMs ?? 30_000): Promise<string> {
    if (cmd === null) throw new SysfsError('exec', `nvidia-smi ${args.join(' ')}`, 'ENOENT', this.opts.nvidiaSmiMissing ?? 'nvidia-smi is not reachable');
    try {
      const { stdout } = await run(cmd, args, { timeout, maxBuffer: 4 << 20, env: this.env() });
      return stdout;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      const code = typeof e.code === 'string' ? e.code : 'EIO';
      throw new SysfsError('exec', `${cmd} ${args.join(' ')}`, code, (e.stderr ?? e.message ?? '').trim().slice(0, 500));
    }
  }
}

/**
 * The host tools of a node vmgpu must never run a program for: a capture
 * archive, or any plain directory tree (its `host/usr/lib/nvidia/sriov-manage`
 * is a file someone gave us, and the host's own nvidia-smi describes other
 * hardware). Nothing can run through it, by construction: a change is refused
 * with `why`, and what nvidia-smi would tell is unknown.
 */
export class NoHostTools implements HostTools {
  constructor(private readonly why: string) {}

  async sriovManageEnable(pf: PciAddress): Promise<void> {
    throw new SysfsError('exec', `sriov-manage -e ${checkPciAddress(pf)}`, 'EPERM', this.why);
  }

  async nvidiaSmiSupportedTypes(_pf: PciAddress): Promise<string | undefined> {
    return undefined;
  }

  async heterogeneousMode(_pf: PciAddress): Promise<boolean | undefined> {
    return undefined;
  }

  async setHeterogeneousMode(pf: PciAddress, enabled: boolean): Promise<void> {
    throw new SysfsError('exec', `nvidia-smi vgpu -shm ${enabled ? 1 : 0} -i ${checkPciAddress(pf)}`, 'EPERM', this.why);
  }

  async sriovManageDisable(pf: PciAddress): Promise<void> {
    throw new SysfsError('exec', `sriov-manage -d ${checkPciAddress(pf)}`, 'EPERM', this.why);
  }

  async migMode(_pf: PciAddress): Promise<MigModeInfo | undefined> {
    return undefined;
  }

  async setMigMode(pf: PciAddress, enabled: boolean): Promise<void> {
    throw new SysfsError('exec', `nvidia-smi -i ${checkPciAddress(pf)} -mig ${enabled ? 1 : 0}`, 'EPERM', this.why);
  }

  async gpuInstances(_pf: PciAddress): Promise<GpuInstanceInfo[] | undefined> {
    return undefined;
  }

  async createGpuInstance(pf: PciAddress, profile: string | number, start: number): Promise<void> {
    throw new SysfsError('exec', `nvidia-smi mig -i ${checkPciAddress(pf)} -cgi ${String(profile)}:${start}`, 'EPERM', this.why);
  }

  async destroyGpuInstance(pf: PciAddress, id: number): Promise<void> {
    throw new SysfsError('exec', `nvidia-smi mig -i ${checkPciAddress(pf)} -dgi -gi ${id}`, 'EPERM', this.why);
  }

  async nvlinkPairs(_onNvidia: readonly PciAddress[]): Promise<[PciAddress, PciAddress][] | undefined> {
    return undefined;
  }
}
