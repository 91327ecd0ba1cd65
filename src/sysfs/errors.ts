/** Typed errors of the sysfs port. Every error names the file and what went wrong. */

/** An input was rejected by its grammar before any file was opened. */
export { InvalidNameError } from '../model/errors.js';

export type SysfsOp = 'read' | 'write' | 'readlink' | 'list' | 'stat' | 'exec';

/** A read or write under /sys, /dev or the host root failed. */
export class SysfsError extends Error {
  override readonly name = 'SysfsError';
  constructor(
    readonly op: SysfsOp,
    /** The full path as the user would see it, e.g. /sys/bus/pci/devices/0000:3b:00.4/nvidia/current_vgpu_type */
    readonly path: string,
    /** errno code: ENOENT, EINVAL, EBUSY, EACCES, EEXIST, EDQUOT, ENODEV, ... */
    readonly code: string,
    /** What the kernel or driver said, when it said more than the errno. */
    readonly detail?: string,
  ) {
    super(`${op} ${path}: ${code}${detail ? ` (${detail})` : ''}`);
  }
}

/** Create a SysfsError from a Node.js fs error. */
export function fromNodeError(op: SysfsOp, path: string, err: unknown): SysfsError {
  const e = err as NodeJS.ErrnoException;
  return new SysfsError(op, path, typeof e?.code === 'string' ? e.code : 'EIO', e?.code ? undefined : String(e?.message ?? err));
}

export function isSysfsError(err: unknown, ...codes: string[]): err is SysfsError {
  return err instanceof SysfsError && (codes.length === 0 || codes.includes(err.code));
}
