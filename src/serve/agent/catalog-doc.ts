/**
 * The cluster catalog's content, as pure functions: one ConfigMap whose
 * entries are what each agent learned first-hand (type ID -> name) for one
 * card model (PCI device ID) and NVIDIA driver version, one entry per node,
 * card and driver version, each written only by its node's agent.
 *
 * Reading merges the entries of every node per card and driver version. An
 * ID two entries name differently, or a name two entries give different IDs,
 * is left out: vmgpu does not pick a side (fail closed), it leaves the type
 * unknown. Every entry is checked before use: its key and fields, each name
 * against the type-name grammar, and its size.
 */
import { createHash } from 'node:crypto';
import type { Inventory } from '../../inventory/types.js';
import { MAX_TYPE_ID, type CatalogEntry } from '../../inventory/catalog.js';
import { checkCacheDeviceId, checkCacheDriverVersion } from '../../inventory/catalog-cache.js';
import { OWN_SOURCES } from '../../machine/shared-names.js';
import { cleanTypeName, parseProfile } from '../../model/profile.js';

const CATALOG_DOC_FORMAT = 1;
/** An entry larger than this is not read (a card has well under 100 types). */
const MAX_ENTRY_BYTES = 64 * 1024;
const MAX_TYPES = 512;
const NODE_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** One node's first-hand names for one card and driver version. */
export interface CatalogDoc {
  format: number;
  node: string;
  deviceId: string;
  driverVersion: string;
  types: CatalogEntry[];
}

/** A type ID the cluster's entries disagree on, for the log. */
export interface CatalogConflict {
  deviceId: string;
  driverVersion: string;
  id: number;
  names: string[];
  nodes: string[];
}

export interface MergedCatalog {
  /** `deviceId|driverVersion` -> id -> name, conflicts left out. */
  names: Map<string, Map<number, string>>;
  conflicts: CatalogConflict[];
  /** Entries that were not read, with why. */
  rejected: { key: string; why: string }[];
}

export const cardKey = (deviceId: string, driverVersion: string): string => `${deviceId}|${driverVersion}`;

/** The ConfigMap key of a node's entry: readable where it fits the key grammar, else a digest. */
export function docKey(node: string, deviceId: string, driverVersion: string): string {
  const readable = `${deviceId}_${driverVersion}_${node}`;
  if (/^[-._a-zA-Z0-9]{1,253}$/.test(readable)) return readable;
  return `${deviceId}_${createHash('sha256').update(`${driverVersion}\0${node}`).digest('hex').slice(0, 32)}`;
}

/** Parse and check one entry; a string says why it is not used. */
export function parseDoc(text: string): CatalogDoc | string {
  if (text.length > MAX_ENTRY_BYTES) return `larger than ${MAX_ENTRY_BYTES} bytes`;
  let v: Partial<CatalogDoc>;
  try {
    v = JSON.parse(text) as Partial<CatalogDoc>;
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null || v.format !== CATALOG_DOC_FORMAT) return `not a format ${CATALOG_DOC_FORMAT} catalog entry`;
  if (typeof v.node !== 'string' || v.node.length > 253 || !NODE_RE.test(v.node)) return 'no valid node name';
  try {
    if (checkCacheDeviceId(String(v.deviceId)) !== v.deviceId) return 'the device ID is not 4 lower-case hex digits';
    checkCacheDriverVersion(String(v.driverVersion));
  } catch (err) {
    return (err as Error).message;
  }
  if (!Array.isArray(v.types) || v.types.length > MAX_TYPES) return 'no valid list of types';
  for (const t of v.types as unknown[]) {
    const { id, name } = (t ?? {}) as { id?: unknown; name?: unknown };
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0 || id > MAX_TYPE_ID) return `type ID ${JSON.stringify(id)} is not a type ID`;
    if (typeof name !== 'string' || cleanTypeName(name) !== name || parseProfile(name) === undefined) return `${JSON.stringify(name)} is not a vGPU type name`;
  }
  return { format: CATALOG_DOC_FORMAT, node: v.node, deviceId: v.deviceId!, driverVersion: v.driverVersion!, types: v.types as CatalogEntry[] };
}

/** Merge every entry of the ConfigMap's data; conflicting IDs and names are left out. */
export function mergeDocs(data: Record<string, string>): MergedCatalog {
  const rejected: MergedCatalog['rejected'] = [];
  const seen = new Map<string, Map<number, Map<string, string[]>>>(); // card -> id -> name -> nodes
  for (const [key, text] of Object.entries(data)) {
    const doc = parseDoc(text);
    if (typeof doc === 'string') {
      rejected.push({ key, why: doc });
      continue;
    }
    const card = seen.get(cardKey(doc.deviceId, doc.driverVersion)) ?? new Map<number, Map<string, string[]>>();
    seen.set(cardKey(doc.deviceId, doc.driverVersion), card);
    for (const t of doc.types) {
      const byName = card.get(t.id) ?? new Map<string, string[]>();
      card.set(t.id, byName);
      byName.set(t.name, [...(byName.get(t.name) ?? []), doc.node]);
    }
  }
  const names = new Map<string, Map<number, string>>();
  const conflicts: CatalogConflict[] = [];
  for (const [card, ids] of seen) {
    const [deviceId, driverVersion] = card.split('|') as [string, string];
    const idsOfName = new Map<string, number[]>();
    for (const [id, byName] of ids) for (const name of byName.keys()) idsOfName.set(name, [...(idsOfName.get(name) ?? []), id]);
    const out = new Map<number, string>();
    for (const [id, byName] of ids) {
      const [name] = byName.keys();
      if (byName.size === 1 && idsOfName.get(name!)!.length === 1) out.set(id, name!);
      else conflicts.push({ deviceId, driverVersion, id, names: [...byName.keys()], nodes: [...new Set([...byName.values()].flat())] });
    }
    names.set(card, out);
  }
  return { names, conflicts, rejected };
}

/** This node's first-hand names per card and driver version, as the entries it would publish. */
export function ownDocs(inv: Inventory, node: string): CatalogDoc[] {
  const driverVersion = inv.node.nvidiaDriverVersion;
  if (!driverVersion) return [];
  const byDevice = new Map<string, Map<number, string>>();
  for (const g of inv.gpus) {
    const types = byDevice.get(g.pci.deviceId) ?? new Map<number, string>();
    byDevice.set(g.pci.deviceId, types);
    for (const t of g.catalog) if (OWN_SOURCES.has(t.source) && t.source !== 'mdev' && parseProfile(t.name)) types.set(t.id, t.name);
  }
  const out: CatalogDoc[] = [];
  for (const [deviceId, types] of byDevice) {
    if (types.size === 0) continue;
    const list = [...types].sort((a, b) => a[0] - b[0]).map(([id, name]) => ({ id, name }));
    out.push({ format: CATALOG_DOC_FORMAT, node, deviceId, driverVersion, types: list });
  }
  return out;
}

/** The cards (`cardKey`) this node has now. */
export function cardsOf(inv: Inventory): Set<string> {
  const version = inv.node.nvidiaDriverVersion;
  return new Set(version ? inv.gpus.map((g) => cardKey(g.pci.deviceId, version)) : []);
}

/**
 * The merge patch of `data` that publishes `mine`: an entry is written when
 * it teaches the cluster something (an ID it lacks) or contradicts it (then
 * the conflict leaves the type unknown everywhere, as it should), and this
 * node's entries for cards or driver versions it no longer has (`cards`) are
 * removed. Null when nothing needs writing.
 */
export function publishPatch(data: Record<string, string>, mine: CatalogDoc[], node: string, cards: ReadonlySet<string>): Record<string, string | null> | null {
  const merged = mergeDocs(data);
  const patch: Record<string, string | null> = {};
  for (const doc of mine) {
    const key = docKey(node, doc.deviceId, doc.driverVersion);
    const known = merged.names.get(cardKey(doc.deviceId, doc.driverVersion)) ?? new Map<number, string>();
    const conflicted = new Set(merged.conflicts.filter((c) => c.deviceId === doc.deviceId && c.driverVersion === doc.driverVersion).map((c) => c.id));
    const teaches = doc.types.some((t) => !conflicted.has(t.id) && known.get(t.id) !== t.name);
    const text = JSON.stringify(doc);
    if (teaches && data[key] !== text) patch[key] = text;
  }
  for (const [key, text] of Object.entries(data)) {
    const doc = parseDoc(text);
    if (typeof doc !== 'string' && doc.node === node && !cards.has(cardKey(doc.deviceId, doc.driverVersion))) patch[key] = null;
  }
  return Object.keys(patch).length ? patch : null;
}
