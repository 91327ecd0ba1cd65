/**
 * Parsers for the places a vGPU type catalog (type ID -> name) comes from:
 * `<VF>/nvidia/creatable_vgpu_types`, `nvidia-smi vgpu -s -v`, mdev type
 * `description` files, and profile names themselves.
 *
 * Every parser takes untrusted text and never throws: lines that do not fit
 * the grammar are skipped (and, where a Detailed variant exists, reported).
 * Names that come out are single-line printable ASCII without `/` or `..`, so
 * callers can put them in logs, resource names and cache files.
 */
import type { VgpuType } from './types.js';
import { profileFact } from '../model/boards.js';
import { cleanTypeName, isMigBacked, nominalFramebufferMiB, parseProfile, stripVendorPrefix } from '../model/profile.js';

export interface CatalogEntry {
  id: number;
  name: string;
}

export interface CatalogParseResult {
  entries: CatalogEntry[];
  /** Lines that were neither an entry, a header nor blank (trimmed, truncated to 200 characters). */
  malformed: string[];
}

/** Largest type ID accepted: the IDs the driver prints are small, this rejects overflow garbage. */
export const MAX_TYPE_ID = 0x7fffffff;
function parseId(digits: string, radix: 10 | 16): number | undefined {
  if (digits.length === 0 || digits.length > 10) return undefined;
  const id = Number.parseInt(digits, radix);
  if (!Number.isSafeInteger(id) || id <= 0 || id > MAX_TYPE_ID) return undefined;
  return id;
}

function splitLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/);
}

function clip(line: string): string {
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** `ID    : vGPU Name`, and the reversed `vGPU Name    ID` some drivers are reported to print. */
const HEADER_RE = /^(?:ID\b[^0-9]*|[^0-9]*\bID)$/i;
const FORWARD_RE = /^([0-9]+)[ \t]*:[ \t]*(.*)$/;
/** `<id> <name>` without the colon. */
const FORWARD_BARE_RE = /^([0-9]+)[ \t]+([A-Za-z].*)$/;
const REVERSED_RE = /^(.*?\S)[ \t]*(?::[ \t]*|[ \t])([0-9]+)$/;

/**
 * Parse `creatable_vgpu_types`: an optional header line, then `<id> : <name>`
 * lines (or `<name>   <id>`). Tolerates CRLF, tabs and extra spaces. Duplicate
 * IDs keep the first name; a conflicting later name is reported as malformed.
 */
export function parseCreatableVgpuTypesDetailed(text: string): CatalogParseResult {
  const entries: CatalogEntry[] = [];
  const malformed: string[] = [];
  if (typeof text !== 'string' || text.length === 0) return { entries, malformed };
  const seen = new Map<number, string>();
  for (const rawLine of splitLines(text)) {
    const line = rawLine.replace(/^[ \t]+|[ \t]+$/g, '');
    if (line === '') continue;
    if (HEADER_RE.test(line)) continue;
    let id: number | undefined;
    let name: string | undefined;
    const fwd = FORWARD_RE.exec(line) ?? FORWARD_BARE_RE.exec(line);
    if (fwd) {
      id = parseId(fwd[1]!, 10);
      name = cleanTypeName(fwd[2]!);
    } else {
      const rev = REVERSED_RE.exec(line);
      if (rev && /[A-Za-z]/.test(rev[1]!)) {
        id = parseId(rev[2]!, 10);
        name = cleanTypeName(rev[1]!);
      }
    }
    if (id === undefined || name === undefined) {
      malformed.push(clip(line));
      continue;
    }
    const prior = seen.get(id);
    if (prior === undefined) {
      seen.set(id, name);
      entries.push({ id, name });
    } else if (prior !== name) {
      malformed.push(clip(line));
    }
  }
  return { entries, malformed };
}

export function parseCreatableVgpuTypes(text: string): CatalogEntry[] {
  return parseCreatableVgpuTypesDetailed(text).entries;
}

/** The file as the driver writes it (header, then `<id> : <name>`); the simulator and tests use it. */
export function formatCreatableVgpuTypes(entries: readonly CatalogEntry[]): string {
  if (entries.length === 0) return '';
  return `ID    : vGPU Name\n${entries.map((e) => `${e.id} : ${e.name}`).join('\n')}\n`;
}

export interface NvidiaSmiTypeEntry extends CatalogEntry {
  /** The GPU block the type was listed under (`00000000:3B:00.0` as printed), null if none. */
  gpu: string | null;
  maxInstances: number | null;
  framebufferMiB: number | null;
  /** `Quadro`, `NVS`, `Compute`, ... as printed. */
  vgpuClass: string | null;
}

function smallInt(text: string | undefined): number | null {
  if (text === undefined || !/^[0-9]{1,9}$/.test(text)) return null;
  return Number(text);
}

/**
 * Parse `nvidia-smi vgpu -s -v` (supported types, verbose):
 *
 *     GPU 00000000:8C:00.0
 *         vGPU Type ID                          : 0x5ee
 *             Name                              : NVIDIA L40S-2B
 *             Class                             : NVS
 *             Max Instances                     : 24
 *             FB Memory                         : 2048 MiB
 *
 * IDs are hex (`0x...`, as printed; bare digits are read as decimal). The
 * plain `nvidia-smi vgpu -s` output lists names without IDs and yields nothing.
 * Each GPU block is kept: the same ID listed under two GPUs appears twice.
 */
export function parseNvidiaSmiSupportedTypesDetailed(text: string): NvidiaSmiTypeEntry[] {
  const out: NvidiaSmiTypeEntry[] = [];
  if (typeof text !== 'string' || text.length === 0) return out;
  let gpu: string | null = null;
  let current: NvidiaSmiTypeEntry | null = null;
  let pendingId: number | undefined;
  for (const rawLine of splitLines(text)) {
    const line = rawLine.trim();
    if (line === '') continue;
    const gpuMatch = /^GPU\s+((?:[0-9A-Fa-f]{4,8}:)?[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])$/.exec(line);
    if (gpuMatch) {
      gpu = gpuMatch[1]!;
      current = null;
      pendingId = undefined;
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9 ()/-]*?)\s*:\s*(.*)$/.exec(line);
    if (!kv) continue;
    const key = kv[1]!.toLowerCase().replace(/\s+/g, ' ');
    const value = kv[2]!.trim();
    if (key === 'vgpu type id') {
      const hex = /^0x([0-9A-Fa-f]+)$/.exec(value);
      pendingId = hex ? parseId(hex[1]!, 16) : /^[0-9]+$/.test(value) ? parseId(value, 10) : undefined;
      current = null;
      continue;
    }
    if (key === 'name' && pendingId !== undefined) {
      const name = cleanTypeName(value);
      if (name !== undefined) {
        current = { id: pendingId, name, gpu, maxInstances: null, framebufferMiB: null, vgpuClass: null };
        out.push(current);
      }
      pendingId = undefined;
      continue;
    }
    if (!current) continue;
    if (key === 'max instances') current.maxInstances = smallInt(value);
    else if (key === 'fb memory') current.framebufferMiB = smallInt(/^([0-9]+)\s*MiB$/i.exec(value)?.[1]);
    else if (key === 'class' && /^[A-Za-z0-9 _-]{1,32}$/.test(value)) current.vgpuClass = value;
  }
  return out;
}

/** ID -> name pairs from `nvidia-smi vgpu -s -v`, one per distinct (id, name). */
export function parseNvidiaSmiSupportedTypes(text: string): CatalogEntry[] {
  const seen = new Set<number>();
  const out: CatalogEntry[] = [];
  for (const e of parseNvidiaSmiSupportedTypesDetailed(text)) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    out.push({ id: e.id, name: e.name });
  }
  return out;
}

export interface MdevDescription {
  numHeads?: number;
  frlConfig?: number;
  framebufferMiB?: number;
  maxResolution?: string;
  maxInstance?: number;
  /** The input, trimmed. */
  raw: string;
}

function sizeToMiB(value: string): number | undefined {
  const m = /^([0-9]{1,12})\s*([KMGT]?)(?:i?B)?$/i.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2]!.toUpperCase();
  const mib = unit === 'K' ? n / 1024 : unit === 'G' ? n * 1024 : unit === 'T' ? n * 1024 * 1024 : unit === 'M' ? n : n / (1024 * 1024);
  return Number.isSafeInteger(Math.floor(mib)) && mib > 0 ? Math.floor(mib) : undefined;
}

/**
 * Parse an mdev type `description`:
 * `num_heads=4, frl_config=60, framebuffer=1024M, max_resolution=5120x2880, max_instance=24`.
 * Unknown keys are ignored; a value that does not parse leaves its field unset.
 */
export function parseMdevDescription(text: string): MdevDescription {
  const raw = typeof text === 'string' ? text.trim() : '';
  const out: MdevDescription = { raw };
  for (const part of raw.split(/[,\n]/)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    switch (key) {
      case 'num_heads': {
        const n = smallInt(value);
        if (n !== null) out.numHeads = n;
        break;
      }
      case 'frl_config': {
        const n = smallInt(value);
        if (n !== null) out.frlConfig = n;
        break;
      }
      case 'max_instance':
      case 'max_instances': {
        const n = smallInt(value);
        if (n !== null) out.maxInstance = n;
        break;
      }
      case 'framebuffer': {
        const mib = sizeToMiB(value);
        if (mib !== undefined) out.framebufferMiB = mib;
        break;
      }
      case 'max_resolution':
        if (/^[0-9]{1,5}x[0-9]{1,5}$/.test(value)) out.maxResolution = value;
        break;
      default:
        break;
    }
  }
  return out;
}

/**
 * A catalog entry as a VgpuType: series, framebuffer and max instances from
 * NVIDIA's documented facts (profiles.ts) when the profile is known, else what
 * the name says (framebuffer from the GB in it, max instances unknown).
 */
export function toVgpuType(entry: CatalogEntry, source: VgpuType['source']): VgpuType {
  const name = cleanTypeName(entry.name) ?? entry.name;
  const profile = stripVendorPrefix(name);
  const fact = profileFact(profile);
  const parsed = fact ? undefined : parseProfile(name);
  return {
    id: entry.id,
    name,
    profile,
    series: fact?.series ?? parsed?.series ?? 'unknown',
    framebufferMiB: fact?.framebufferMiB ?? (parsed ? nominalFramebufferMiB(parsed) : null),
    maxInstances: fact?.maxInstances ?? null,
    migBacked: fact?.migBacked ?? (parsed ? isMigBacked(parsed) : false),
    source,
  };
}
