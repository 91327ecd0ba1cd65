/**
 * Grammars for every name that may become a path component under /sys or /dev.
 *
 * Nothing reaches the file system unless it parsed here first. Each parser
 * accepts a narrow grammar, normalises it, and throws InvalidNameError for
 * anything else (so `/`, `..`, NUL, whitespace and friends never get through).
 */
import { quoteCut } from '../io/cut.js';
import { InvalidNameError } from './errors.js';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A PCI function address, always `dddd:bb:dd.f` in lower-case hex. */
export type PciAddress = Brand<string, 'PciAddress'>;
/** An mdev instance UUID in canonical lower-case 8-4-4-4-12 form. */
export type MdevUuid = Brand<string, 'MdevUuid'>;
/** An mdev type directory name such as `nvidia-256`. */
export type MdevTypeName = Brand<string, 'MdevTypeName'>;
/** A kernel driver or module name such as `vfio-pci` or `nvgrace_gpu_vfio_pci`. */
export type DriverName = Brand<string, 'DriverName'>;

const PCI_FULL = /^([0-9a-fA-F]{4}|0000[0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$/;
const PCI_SHORT = /^([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$/;
/** The canonical form; the only one the port accepts when building a path. */
export const PCI_ADDRESS_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MDEV_TYPE_RE = /^[A-Za-z0-9_]+-[0-9]+$/;
const DRIVER_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
const DECIMAL_RE = /^[0-9]{1,9}$/;
const VFIO_DEV_RE = /^vfio[0-9]{1,6}$/;

function describe(input: unknown): string {
  return typeof input === 'string' ? quoteCut(input) : String(input).slice(0, 80);
}

/**
 * Parse a PCI address. Accepts `dddd:bb:dd.f`, the short `bb:dd.f` (domain 0)
 * and nvidia-smi's 8-digit domain `00000000:bb:dd.f`, in any case; returns the
 * canonical lower-case `dddd:bb:dd.f`.
 */
export function parsePciAddress(input: string): PciAddress {
  if (typeof input === 'string') {
    const full = PCI_FULL.exec(input);
    if (full) {
      const domain = full[1]!.slice(-4);
      return `${domain}:${full[2]}:${full[3]}.${full[4]}`.toLowerCase() as PciAddress;
    }
    const short = PCI_SHORT.exec(input);
    if (short) return `0000:${short[1]}:${short[2]}.${short[3]}`.toLowerCase() as PciAddress;
  }
  throw new InvalidNameError('PCI address', describe(input), 'dddd:bb:dd.f in hex, e.g. 0000:3b:00.0');
}

export function isPciAddress(input: string): input is PciAddress {
  return PCI_ADDRESS_RE.test(input);
}

/** Assert an already-canonical PCI address (used by the port on every path it builds). */
export function checkPciAddress(input: string): PciAddress {
  if (typeof input !== 'string' || !PCI_ADDRESS_RE.test(input)) {
    throw new InvalidNameError('PCI address', describe(input), 'dddd:bb:dd.f in lower-case hex, e.g. 0000:3b:00.0');
  }
  return input as PciAddress;
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

/** The address of VF `i` of a PF, from the PF's SR-IOV offset and stride (routing-ID arithmetic). */
export function vfAddress(pf: string, offset: number, stride: number, i: number): string {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(pf);
  if (!m) throw new InvalidNameError('PCI address', JSON.stringify(pf), 'dddd:bb:dd.f in lower-case hex');
  const rid = (parseInt(m[2]!, 16) << 8) + (parseInt(m[3]!, 16) << 3) + parseInt(m[4]!, 10) + offset + i * stride;
  const bus = ((rid >> 8) & 0xff).toString(16).padStart(2, '0');
  const dev = ((rid >> 3) & 0x1f).toString(16).padStart(2, '0');
  return `${m[1]}:${bus}:${dev}.${rid & 7}`;
}
