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

  private nvidiaSmi(): string | null {
    return this.opts.nvidiaSmi === undefined ? 'nvidia-smi' : this.opts.nvidiaSmi;
  }

  private async exec(cmd: string | null, args: string[], timeout = this.opts.timeoutMs ?? 30_000): Promise<string> {
    if (cmd === null) throw new SysfsError('exec', `nvidia-smi ${args.join(' ')}`, 'ENOENT', this.opts.nvidiaSmiMissing ?? 'nvidia-smi is not reachable');
    try {
      const env = this.opts.libraryPath ? { ...process.env, LD_LIBRARY_PATH: this.opts.libraryPath } : process.env;
      const { stdout } = await run(cmd, args, { timeout, maxBuffer: 4 << 20, env });
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
}
