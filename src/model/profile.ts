/**
 * The vGPU profile vocabulary: one grammar for every place a profile name
 * comes from (config files, the driver's creatable lists and mdev type names,
 * nvidia-smi, the catalog cache), one result type.
 *
 * Shapes, as NVIDIA names them (vgpu-device-manager `pkg/types`, vGPU 20):
 * - time-sliced `<board>-<GB><series>`: `L40S-12Q`, `M60-0Q` (0 = 512 MB),
 *   `RTX6000-Ada-12Q`, and on old GRID boards a head count (`M60-2B4`);
 * - MIG-backed `<board>-<slices>-<GB><series>[attribute]`: `A100-1-5C`,
 *   `A30-1-6CME`, `DC-1-24CGFX` (RTX PRO 6000 Blackwell, graphics);
 * series Q (RTX vWS), B (vPC), A (vApps), C (compute); attributes ME, NOME,
 * MEALL (media extensions) and GFX (graphics). The driver prefixes names with
 * `NVIDIA ` or `GRID ` and, on Blackwell RTX PRO boards, the board's name
 * (`NVIDIA RTX Pro 6000 Blackwell DC-1-3Q`): the profile is the last word, as
 * NVIDIA's own tools read it (go-nvlib's mdev type name parser), so NVIDIA's
 * configs (`DC-1-3Q`) name it.
 */
import type { Brand } from './brand.js';

export type VgpuSeries = 'Q' | 'B' | 'A' | 'C';
export type MigAttribute = 'ME' | 'NOME' | 'MEALL' | 'GFX';

/** A profile name without the vendor prefix: `L40S-12Q`, `A100-1-5C`. */
export type ProfileName = Brand<string, 'ProfileName'>;

export interface Profile {
  name: ProfileName;
  /** `L40S`, `A100D`, `RTX6000-Ada`, `DC`. */
  board: string;
  /** GB in the name (0 stands for 512 MB on old boards). */
  framebufferGB: number;
  series: VgpuSeries;
  /** GPU instance slices of a MIG-backed profile (`A100-2-10C` -> 2); null for time-sliced ones. */
  gpuInstanceSlices: number | null;
  /** `ME`, `NOME`, `MEALL` or `GFX` after a MIG-backed profile's series. */
  attribute: MigAttribute | null;
}

export function isMigBacked(p: Profile): boolean {
  return p.gpuInstanceSlices !== null;
}

/** Longest type name accepted (the driver's names are well under 64 characters). */
const MAX_NAME_LENGTH = 128;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._+()-]*$/;
const BOARD = '[A-Za-z0-9][A-Za-z0-9 ._+()-]{0,63}?';
const MIG_RE = new RegExp(`^(${BOARD})-([1-8])-(0|[1-9][0-9]{0,3})([ABCQ])(ME|NOME|MEALL|GFX)?$`);
// Old GRID names carry a head count after the series (`M60-2B4`).
const TIME_SLICED_RE = new RegExp(`^(${BOARD})-(0|[1-9][0-9]{0,3})([ABCQ])([0-9]?)$`);
// NVIDIA vgpu-device-manager's own (stricter) shapes: upper-case boards, `-Ada` style suffixes.
const NVIDIA_TIME_SLICED_RE = /^[A-Z0-9]+(-[a-zA-Z]+)*-(0|[1-9][0-9]*)[ABCQ]$/;
const NVIDIA_MIG_RE = /^[A-Z0-9]+-[1-9]-(0|[1-9][0-9]*)[ABCQ](ME|NOME|MEALL|GFX)?$/;

/**
 * Canonical form of a type name as printed by the driver or a tool, or
 * undefined when it is not an acceptable name (single-line printable ASCII,
 * no `/` or `..`, so it is safe in logs, resource names and cache files).
 */
export function cleanTypeName(raw: string): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const name = raw.replace(/[ \t]+/g, ' ').trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return undefined;
  if (!NAME_RE.test(name) || name.includes('..')) return undefined;
  return name;
}

/**
 * The profile part of a type name: its last word (`NVIDIA L40S-12Q`,
 * `GRID T4-1Q`, `NVIDIA RTX Pro 6000 Blackwell DC-48Q` -> `L40S-12Q`, `T4-1Q`,
 * `DC-48Q`).
 */
export function stripVendorPrefix(name: string): string {
  const words = name.trim().split(/\s+/);
  return words[words.length - 1]!;
}

/** Parse a profile or type name in any of the shapes above; undefined when it is none of them. */
export function parseProfile(text: string): Profile | undefined {
  const cleaned = cleanTypeName(text);
  if (cleaned === undefined) return undefined;
  const name = stripVendorPrefix(cleaned);
  const mig = MIG_RE.exec(name);
  if (mig) {
    return { name: name as ProfileName, board: mig[1]!, framebufferGB: Number(mig[3]), series: mig[4] as VgpuSeries, gpuInstanceSlices: Number(mig[2]), attribute: (mig[5] as MigAttribute | undefined) ?? null };
  }
  const ts = TIME_SLICED_RE.exec(name);
  if (ts && !ts[1]!.endsWith('-')) return { name: name as ProfileName, board: ts[1]!, framebufferGB: Number(ts[2]), series: ts[3] as VgpuSeries, gpuInstanceSlices: null, attribute: null };
  return undefined;
}

/** The profile name of a type name, when it parses (`NVIDIA L40S-12Q` -> `L40S-12Q`). */
export function profileNameOf(text: string): ProfileName | undefined {
  return parseProfile(text)?.name;
}

/** Whether a bare name has one of the shapes NVIDIA's config tools accept (upper-case boards). */
export function isNvidiaProfileShape(bare: string): boolean {
  return NVIDIA_TIME_SLICED_RE.test(bare) || NVIDIA_MIG_RE.test(bare);
}

/** Nominal framebuffer of a profile from its name, in MiB (`0` GB stands for 512 MiB). */
export function nominalFramebufferMiB(p: Profile): number {
  return p.framebufferGB === 0 ? 512 : p.framebufferGB * 1024;
}
