/**
 * Grammars for every name that may become a path component under /sys or /dev
 * (PCI addresses are vocabulary: src/model/pci.ts).
 *
 * Nothing reaches the file system unless it parsed here first. Each parser
 * accepts a narrow grammar, normalises it, and throws InvalidNameError for
 * anything else (so `/`, `..`, NUL, whitespace and friends never get through).
 */
import { quoteCut } from '../io/cut.js';
import type { Brand } from '../model/brand.js';
import { InvalidNameError } from '../model/errors.js';

/** An mdev instance UUID in canonical lower-case 8-4-4-4-12 form. */
export type MdevUuid = Brand<string, 'MdevUuid'>;
/** An mdev type directory name such as `nvidia-256`. */
export type MdevTypeName = Brand<string, 'MdevTypeName'>;
/** A kernel driver or module name such as `vfio-pci` or `nvgrace_gpu_vfio_pci`. */
export type DriverName = Brand<string, 'DriverName'>;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MDEV_TYPE_RE = /^[A-Za-z0-9_]+-[0-9]+$/;
const DRIVER_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
const DECIMAL_RE = /^[0-9]{1,9}$/;
const VFIO_DEV_RE = /^vfio[0-9]{1,6}$/;

function describe(input: unknown): string {
  return typeof input === 'string' ? quoteCut(input) : String(input).slice(0, 80);
}

export function parseMdevUuid(input: string): MdevUuid {
  if (typeof input === 'string' && UUID_RE.test(input)) return input.toLowerCase() as MdevUuid;
  throw new InvalidNameError('mdev UUID', describe(input), '8-4-4-4-12 hex digits, e.g. 6f3a1e2c-0000-4000-8000-000000000001');
}

export function parseMdevTypeName(input: string): MdevTypeName {
  if (typeof input === 'string' && MDEV_TYPE_RE.test(input)) return input as MdevTypeName;
  throw new InvalidNameError('mdev type directory', describe(input), '<vendor>-<number>, e.g. nvidia-256');
}

export function parseDriverName(input: string): DriverName {
  if (typeof input === 'string' && DRIVER_RE.test(input)) return input as DriverName;
  throw new InvalidNameError('driver or module name', describe(input), 'letters, digits, _ and -, e.g. vfio-pci');
}

/** A decimal number used as a path component (IOMMU group) or written value (type ID). */
export function parseDecimal(kind: string, input: string | number): number {
  const text = typeof input === 'number' ? String(input) : input;
  if (typeof text === 'string' && DECIMAL_RE.test(text)) return Number(text);
  throw new InvalidNameError(kind, describe(input), 'a non-negative decimal integer');
}

export function parseVfioDevName(input: string): string {
  if (typeof input === 'string' && VFIO_DEV_RE.test(input)) return input;
  throw new InvalidNameError('vfio-dev name', describe(input), 'vfio<N>, e.g. vfio3');
}

/** Kernel release as used under /lib/modules: no path characters. */
export function parseKernelRelease(input: string): string {
  // Starts with a letter or digit, so `.` (the current directory) and hidden names never pass.
  if (typeof input === 'string' && /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/.test(input) && !input.includes('..')) return input;
  throw new InvalidNameError('kernel release', describe(input), 'e.g. 6.8.0-45-generic');
}
