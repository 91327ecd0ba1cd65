/**
 * PCI vocabulary: function addresses (`0000:3b:00.0`) and vendor/device IDs
 * (`10de`, `26b9`). One parser each; everything downstream takes the branded
 * result and never re-checks or re-normalises it.
 */
import type { Brand } from './brand.js';
import { InvalidNameError } from './errors.js';

/** A PCI function address, always `dddd:bb:dd.f` in lower-case hex. */
export type PciAddress = Brand<string, 'PciAddress'>;

/** A PCI vendor, device or subsystem ID: 4 lower-case hex digits, no `0x`. */
export type PciId = Brand<string, 'PciId'>;

const PCI_FULL = /^([0-9a-fA-F]{4}|0000[0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$/;
const PCI_SHORT = /^([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$/;
/** The canonical form; the only one the port accepts when building a path. */
export const PCI_ADDRESS_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const PCI_ID_RE = /^(?:0[xX])?([0-9a-fA-F]{1,4})$/;

function describe(input: unknown): string {
  return typeof input === 'string' ? JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input) : String(input);
}

/**
 * Parse a PCI address. Accepts `dddd:bb:dd.f`, the short `bb:dd.f` (domain 0)
 * and nvidia-smi's 8-digit domain `00000000:bb:dd.f`, in any case; returns the
 * canonical lower-case `dddd:bb:dd.f`.
 */
export function parsePciAddress(input: string): PciAddress {
  if (typeof input === 'string') {
    const full = PCI_FULL.exec(input);
    if (full) return `${full[1]!.slice(-4)}:${full[2]}:${full[3]}.${full[4]}`.toLowerCase() as PciAddress;
    const short = PCI_SHORT.exec(input);
    if (short) return `0000:${short[1]}:${short[2]}.${short[3]}`.toLowerCase() as PciAddress;
  }
  throw new InvalidNameError('PCI address', describe(input), 'dddd:bb:dd.f in hex, e.g. 0000:3b:00.0');
}

export function isPciAddress(input: string): input is PciAddress {
  return typeof input === 'string' && PCI_ADDRESS_RE.test(input);
}

/** Assert an already-canonical PCI address (the port checks every path it builds). */
export function checkPciAddress(input: string): PciAddress {
  if (!isPciAddress(input)) throw new InvalidNameError('PCI address', describe(input), 'dddd:bb:dd.f in lower-case hex, e.g. 0000:3b:00.0');
  return input;
}

/** The address of VF `i` of a PF, from the PF's SR-IOV offset and stride (routing-ID arithmetic). */
export function vfAddress(pf: string, offset: number, stride: number, i: number): PciAddress {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(checkPciAddress(pf))!;
  const rid = (parseInt(m[2]!, 16) << 8) + (parseInt(m[3]!, 16) << 3) + parseInt(m[4]!, 10) + offset + i * stride;
  const bus = ((rid >> 8) & 0xff).toString(16).padStart(2, '0');
  const dev = ((rid >> 3) & 0x1f).toString(16).padStart(2, '0');
  return `${m[1]}:${bus}:${dev}.${rid & 7}` as PciAddress;
}

/** `0x10DE`, `10de`, ` 26B9 ` -> `10de`/`26b9`; undefined when it is not a 16-bit hex ID. */
export function toPciId(input: string): PciId | undefined {
  const m = typeof input === 'string' ? PCI_ID_RE.exec(input.trim()) : null;
  return m ? (m[1]!.toLowerCase().padStart(4, '0') as PciId) : undefined;
}

