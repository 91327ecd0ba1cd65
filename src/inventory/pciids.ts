/**
 * The PCI IDs database (`pci.ids`, usually /usr/share/misc/pci.ids or
 * /usr/share/hwdata/pci.ids), and the names vmgpu derives from it.
 *
 * The file is ~1.5 MB. load() reads it once and indexes only where each vendor
 * block starts; a vendor's devices are parsed the first time that vendor is
 * asked for. Format (pciutils):
 *
 *     vvvv  Vendor name
 *     <TAB>dddd  Device name
 *     <TAB><TAB>ssss ssss  Subsystem name
 *     # comment
 *     C cc  Class name        (the class section, after all vendors)
 */
import { toPciId } from '../model/pci.js';
import { readFileSync, statSync } from 'node:fs';
import { knownModel } from '../model/models.js';

export const DEFAULT_PCI_IDS_PATHS = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids', '/usr/share/pci.ids'] as const;

/** Refuse files larger than this: pci.ids is ~1.5 MB. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;



interface VendorBlock {
  name: string;
  devices: Map<string, { name: string; subsystems: Map<string, string> }>;
}

export class PciIdsError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'PciIdsError';
  }
}

export class PciIds {
  private readonly parsed = new Map<string, VendorBlock | null>();

  private constructor(
    private readonly text: string,
    /** Vendor ID -> [start of its line, start of the next top-level line]. */
    private readonly vendorRanges: ReadonlyMap<string, readonly [number, number]>,
    /** Where it was read from, or `(empty)`. */
    readonly source: string,
  ) {}

  /** Read and index a pci.ids file. Throws PciIdsError naming the file when it cannot be used. */
  static load(path: string): PciIds {
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
      throw new PciIdsError(`PCI IDs database path ${JSON.stringify(path)} is not a usable file path`, String(path));
    }
    let text: string;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
      if (st.size > MAX_FILE_BYTES) throw Object.assign(new Error(`file is ${st.size} bytes, larger than ${MAX_FILE_BYTES}`), { code: 'EFBIG' });
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new PciIdsError(
        `cannot read the PCI IDs database ${path}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' ').trim() +
          ` (install pciutils or hwdata, or point the pci-ids setting at a pci.ids file; names then fall back to vmgpu's built-in table)`,
        path,
      );
    }
    const ranges = indexVendors(text);
    if (ranges.size === 0) {
      throw new PciIdsError(
        `${path} is not a PCI IDs database: no vendor lines (\`vvvv  Name\`) found; expected the pci.ids file from pciutils/hwdata`,
        path,
      );
    }
    return new PciIds(text, ranges, path);
  }

  /** A database that knows nothing (names fall back to models.ts and hex IDs). */
  static empty(): PciIds {
    return new PciIds('', new Map(), '(empty)');
  }

  /** Build from text already in memory (tests, embedded copies). */
  static fromText(text: string, source = '(text)'): PciIds {
    return new PciIds(text, indexVendors(text), source);
  }

  get vendorCount(): number {
    return this.vendorRanges.size;
  }

  vendorName(vendorId: string): string | undefined {
    return this.vendor(vendorId)?.name;
  }

  deviceName(vendorId: string, deviceId: string): string | undefined {
    const d = toPciId(deviceId);
    if (!d) return undefined;
    return this.vendor(vendorId)?.devices.get(d)?.name;
  }

  subsystemName(vendorId: string, deviceId: string, subVendorId: string, subDeviceId: string): string | undefined {
    const d = toPciId(deviceId);
    const sv = toPciId(subVendorId);
    const sd = toPciId(subDeviceId);
    if (!d || !sv || !sd) return undefined;
    return this.vendor(vendorId)?.devices.get(d)?.subsystems.get(`${sv} ${sd}`);
  }

  private vendor(vendorId: string): VendorBlock | undefined {
    const v = toPciId(vendorId);
    if (!v) return undefined;
    const cached = this.parsed.get(v);
    if (cached !== undefined) return cached ?? undefined;
    const range = this.vendorRanges.get(v);
    const block = range ? parseVendorBlock(this.text.slice(range[0], range[1])) : null;
    this.parsed.set(v, block);
    return block ?? undefined;
  }
}

/** Offsets of every vendor line; the class section (`C xx`) ends the vendor list. */
function indexVendors(text: string): Map<string, readonly [number, number]> {
  const starts: { id: string; at: number }[] = [];
  let end = text.length;
  const re = /^([0-9a-fA-F]{4})[ \t]+\S|^C [0-9a-fA-F]{2}[ \t]/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] === undefined) {
      end = m.index;
      break;
    }
    starts.push({ id: m[1].toLowerCase(), at: m.index });
  }
  const ranges = new Map<string, readonly [number, number]>();
  for (let i = 0; i < starts.length; i++) {
    const s = starts[i]!;
    const next = i + 1 < starts.length ? starts[i + 1]!.at : end;
    if (!ranges.has(s.id)) ranges.set(s.id, [s.at, next]);
  }
  return ranges;
}

function parseVendorBlock(block: string): VendorBlock | null {
  const lines = block.split(/\r?\n/);
  const head = /^[0-9a-fA-F]{4}[ \t]+(.*\S)\s*$/.exec(lines[0] ?? '');
  if (!head) return null;
  const vendor: VendorBlock = { name: head[1]!, devices: new Map() };
  let device: { name: string; subsystems: Map<string, string> } | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('#') || line.trim() === '') continue;
    const sub = /^\t\t([0-9a-fA-F]{4})[ \t]+([0-9a-fA-F]{4})[ \t]+(.*\S)\s*$/.exec(line);
    if (sub) {
      device?.subsystems.set(`${sub[1]!.toLowerCase()} ${sub[2]!.toLowerCase()}`, sub[3]!);
      continue;
    }
    const dev = /^\t([0-9a-fA-F]{4})[ \t]+(.*\S)\s*$/.exec(line);
    if (dev) {
      device = { name: dev[2]!, subsystems: new Map() };
      if (!vendor.devices.has(dev[1]!.toLowerCase())) vendor.devices.set(dev[1]!.toLowerCase(), device);
    }
  }
  return vendor;
}

/** Load the first readable database among `paths`; PciIds.empty() when none is. */
export function loadFirstPciIds(paths: readonly string[] = DEFAULT_PCI_IDS_PATHS): PciIds {
  for (const p of paths) {
    try {
      return PciIds.load(p);
    } catch {
      // try the next one
    }
  }
  return PciIds.empty();
}

const NVIDIA = '10de';

/** Normalised IDs; anything that is not hex is shown as `unknown` rather than echoed. */
function idsOrRaw(vendorId: string, deviceId: string): [string, string] {
  const clean = (s: string): string => {
    const hex = typeof s === 'string' ? s.trim().toLowerCase().replace(/^0x/, '') : '';
    return /^[0-9a-f]{1,8}$/.test(hex) ? hex : 'unknown';
  };
  return [toPciId(vendorId) ?? clean(vendorId), toPciId(deviceId) ?? clean(deviceId)];
}

/**
 * Human name of a device: the PCI IDs database's device name
 * (`AD102GL [L40S]`), else for NVIDIA vmgpu's table of newer models, else
 * `vvvv:dddd`.
 */
export function deviceDisplayName(ids: PciIds, vendorId: string, deviceId: string): string {
  const fromDb = ids.deviceName(vendorId, deviceId);
  if (fromDb) return fromDb;
  const [v, d] = idsOrRaw(vendorId, deviceId);
  if (v === NVIDIA) {
    const known = knownModel(d);
    if (known) return known.pciName;
  }
  return `${v}:${d}`;
}

/**
 * The device-name part of a passthrough resource name, the way NVIDIA's
 * KubeVirt device plugin derives it: upper-case, `/` and `.` to `_`, each run
 * of whitespace to one `_`, then everything but letters, digits and `_` dropped.
 * `GA102GL [A10]` -> `GA102GL_A10`.
 */
export function resourceNameFromDeviceName(deviceName: string): string {
  return deviceName
    .trim()
    .toUpperCase()
    .replace(/[/.]/g, '_')
    .replace(/\s+/g, '_')
    .replace(/[^A-Z0-9_]/g, '');
}

/**
 * CONTRACTS §7: `nvidia.com/<name>` from the PCI IDs database
 * (`2236 GA102GL [A10]` -> `nvidia.com/GA102GL_A10`), falling back to vmgpu's
 * table of models and, last, to the hex device ID as NVIDIA's plugin does
 * (`nvidia.com/1234`; other vendors `nvidia.com/VVVV_DDDD`).
 */
export function passthroughResourceName(ids: PciIds, vendorId: string, deviceId: string): string {
  const [v, d] = idsOrRaw(vendorId, deviceId);
  let name = ids.deviceName(v, d);
  if (!name && v === NVIDIA) name = knownModel(d)?.pciName;
  const part = name ? resourceNameFromDeviceName(name) : '';
  if (part) return `nvidia.com/${part}`;
  return v === NVIDIA ? `nvidia.com/${d}` : `nvidia.com/${v.toUpperCase()}_${d.toUpperCase()}`;
}
