/**
 * On-disk vGPU type catalog: ID -> name per card model and driver version.
 *
 * `creatable_vgpu_types` shrinks as a card fills up (a full card, or a VF with
 * a type, lists nothing), so the names of IDs already in use must be
 * remembered from when they were visible. Stored at
 * `<stateDir>/catalog/<deviceId>-<driverVersion>.json`, written atomically
 * (temp file in the same directory, fsync, rename) and read with a bound.
 * Leftover temp files from a crash are never read.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readTextBounded, writeFileAtomic } from '../io/files.js';
import { cleanTypeName } from '../model/profile.js';
import { MAX_TYPE_ID, type CatalogEntry } from './catalog.js';

const DEVICE_ID_RE = /^[0-9a-f]{4}$/;
/** Driver versions look like `550.90.07`, `595.58.02`, `17.4`: digits, letters, `.`, `_`, `-`, `+`. */
const DRIVER_VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const CACHE_FORMAT = 1;
/** A catalog is a few hundred types of a few dozen bytes each; a larger file is not one of ours. */
const MAX_CACHE_BYTES = 1024 * 1024;

export class CatalogCacheError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogCacheError';
  }
}

/** Lower-case 4-hex-digit device ID, or a CatalogCacheError saying what was wrong. */
export function checkCacheDeviceId(deviceId: string): string {
  const v = typeof deviceId === 'string' ? deviceId.trim().toLowerCase().replace(/^0x/, '') : '';
  if (!DEVICE_ID_RE.test(v)) {
    throw new CatalogCacheError(`catalog cache: device ID ${JSON.stringify(deviceId)} is not 4 hex digits (e.g. 26b9)`);
  }
  return v;
}

export function checkCacheDriverVersion(driverVersion: string): string {
  if (typeof driverVersion !== 'string' || !DRIVER_VERSION_RE.test(driverVersion) || driverVersion.includes('..')) {
    throw new CatalogCacheError(
      `catalog cache: driver version ${JSON.stringify(driverVersion)} is not a driver version (letters, digits, '.', '_', '-', '+'; e.g. 550.90.07)`,
    );
  }
  return driverVersion;
}

interface CacheFile {
  format: number;
  deviceId: string;
  driverVersion: string;
  entries: CatalogEntry[];
}

function validEntries(value: unknown): CatalogEntry[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: CatalogEntry[] = [];
  const seen = new Set<number>();
  for (const e of value) {
    if (typeof e !== 'object' || e === null) return undefined;
    const { id, name } = e as { id?: unknown; name?: unknown };
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0 || id > MAX_TYPE_ID) return undefined;
    const clean = typeof name === 'string' ? cleanTypeName(name) : undefined;
    if (clean === undefined || clean !== name) return undefined;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ id, name: clean });
  }
  return out;
}

export class CatalogCache {
  readonly dir: string;

  constructor(stateDir: string) {
    if (typeof stateDir !== 'string' || stateDir.length === 0 || stateDir.includes('\0')) {
      throw new CatalogCacheError(`catalog cache: state directory ${JSON.stringify(stateDir)} is not a usable path`);
    }
    this.dir = join(stateDir, 'catalog');
  }

  /** Path of the cache file for a device and driver version (both validated). */
  pathFor(deviceId: string, driverVersion: string): string {
    return join(this.dir, `${checkCacheDeviceId(deviceId)}-${checkCacheDriverVersion(driverVersion)}.json`);
  }

  /**
   * Cached entries, sorted by ID; undefined when there is no cache file, or it
   * is unreadable or not a cache file this version wrote (a corrupt cache is
   * treated as absent; the next merge rewrites it). Invalid keys throw.
   */
  get(deviceId: string, driverVersion: string): CatalogEntry[] | undefined {
    const path = this.pathFor(deviceId, driverVersion);
    let text: string;
    try {
      text = readTextBounded(path, MAX_CACHE_BYTES);
    } catch {
      return undefined;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (typeof data !== 'object' || data === null) return undefined;
    const file = data as Partial<CacheFile>;
    if (file.format !== CACHE_FORMAT) return undefined;
    if (file.deviceId !== checkCacheDeviceId(deviceId) || file.driverVersion !== driverVersion) return undefined;
    return validEntries(file.entries);
  }

  /**
   * Union `entries` with what is cached and write the result atomically. An ID
   * already cached keeps its cached name unless the new one differs, in which
   * case the new one wins (the driver is the authority for its own version).
   * Returns the merged list. Entries with invalid IDs or names are ignored.
   */
  merge(deviceId: string, driverVersion: string, entries: readonly CatalogEntry[]): CatalogEntry[] {
    const dev = checkCacheDeviceId(deviceId);
    const ver = checkCacheDriverVersion(driverVersion);
    const merged = new Map<number, string>();
    for (const e of this.get(dev, ver) ?? []) merged.set(e.id, e.name);
    let changed = false;
    for (const e of entries) {
      const name = typeof e?.name === 'string' ? cleanTypeName(e.name) : undefined;
      const id = e?.id;
      if (name === undefined || typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0 || id > MAX_TYPE_ID) continue;
      if (merged.get(id) !== name) {
        merged.set(id, name);
        changed = true;
      }
    }
    const list = [...merged.entries()].sort((a, b) => a[0] - b[0]).map(([id, name]) => ({ id, name }));
    if (changed || this.get(dev, ver) === undefined) {
      const file: CacheFile = { format: CACHE_FORMAT, deviceId: dev, driverVersion: ver, entries: list };
      this.writeAtomic(this.pathFor(dev, ver), `${JSON.stringify(file, null, 2)}\n`);
    }
    return list;
  }

  private writeAtomic(path: string, content: string): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      writeFileAtomic(path, content, { mode: 0o644, durable: true });
    } catch (err) {
      throw new CatalogCacheError(`catalog cache: cannot write ${path}: ${(err as Error).message} (check that the state directory is writable)`);
    }
  }
}
