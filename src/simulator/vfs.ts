/**
 * A small in-memory file tree with kernel-like semantics: directories,
 * attribute files whose reads and writes call into the simulated driver, and
 * relative symlinks resolved as the kernel resolves them. It implements the
 * same SysfsBackend the port uses for real disks.
 */
import type { EntryKind, Root, SysfsBackend } from '../sysfs/backend.js';
import { assertSafeRelative } from '../sysfs/backend.js';
import { SysfsError } from '../sysfs/errors.js';

export interface VDir {
  t: 'd';
  c: Map<string, VNode>;
}
export interface VFile {
  t: 'f';
  read: () => string;
  /** Absent: the file is read-only (EACCES on write). Throws SysfsError codes as the driver would. */
  write?: (data: string) => void;
}
export interface VLink {
  t: 'l';
  target: string;
}
export interface VDevice {
  t: 'c';
}
export type VNode = VDir | VFile | VLink | VDevice;

export const dir = (): VDir => ({ t: 'd', c: new Map() });
export const file = (read: () => string, write?: (data: string) => void): VFile => (write ? { t: 'f', read, write } : { t: 'f', read });
export const text = (value: string): VFile => ({ t: 'f', read: () => value });
export const link = (target: string): VLink => ({ t: 'l', target });
export const chardev = (): VDevice => ({ t: 'c' });

/** Build helper: create or return the directory at a slash path below `root`. */
export function mkdirp(root: VDir, rel: string): VDir {
  let cur = root;
  for (const part of rel.split('/').filter(Boolean)) {
    let next = cur.c.get(part);
    if (!next) {
      next = dir();
      cur.c.set(part, next);
    }
    if (next.t !== 'd') throw new Error(`simulator: ${rel}: ${part} is not a directory`);
    cur = next;
  }
  return cur;
}

/** Build helper: put a node at a slash path, creating parent directories. */
export function put(root: VDir, rel: string, node: VNode): void {
  const parts = rel.split('/').filter(Boolean);
  const name = parts.pop();
  if (!name) throw new Error('simulator: empty path');
  mkdirp(root, parts.join('/')).c.set(name, node);
}

/** Build helper: remove the node at a slash path (and what is under it), if there is one. */
export function unput(root: VDir, rel: string): void {
  const parts = rel.split('/').filter(Boolean);
  const name = parts.pop();
  let cur: VDir = root;
  for (const part of parts) {
    const next = cur.c.get(part);
    if (!next || next.t !== 'd') return;
    cur = next;
  }
  if (name) cur.c.delete(name);
}

export interface Trees {
  sys: VDir;
  dev: VDir;
  host: VDir;
}

const MAX_LINKS = 40;

/** What one lookup is about, for error messages. */
interface Resolution {
  trees: Trees;
  root: Root;
  rel: string;
  op: SysfsError['op'];
}

/** A resolved node and its link-free path from the root, as components. */
interface At {
  node: VNode;
  real: string[];
}

/**
 * A SysfsBackend over in-memory trees. `trees()` is called on every access so
 * the owner can rebuild them; directories resolved in a tree are remembered
 * for that tree (an inventory reads thousands of files through the same few
 * hundred linked directories), and `forget()` drops them when the owner
 * changes a tree in place.
 */
export class VirtualBackend implements SysfsBackend {
  private dirs = new WeakMap<Trees, Map<string, At | null>>();

  constructor(
    readonly description: string,
    private readonly trees: () => Trees,
    private readonly onWrite: (root: Root, rel: string, data: string, error: SysfsError | null) => void = () => {},
  ) {}

  display(root: Root, rel: string): string {
    const base = root === 'sys' ? '/sys' : root === 'dev' ? '/dev' : '';
    return rel ? `${base}/${rel}` : base || '/';
  }

  /** The owner changed a tree in place (not by rebuilding it): resolve everything again. */
  forget(): void {
    this.dirs = new WeakMap();
  }

  private resolve(root: Root, rel: string, followFinal: boolean, op: SysfsError['op']): VNode | null {
    assertSafeRelative(rel);
    const trees = this.trees();
    const r: Resolution = { trees, root, rel, op };
    if (rel === '') return trees[root];
    const i = rel.lastIndexOf('/');
    const parent = i < 0 ? { node: trees[root], real: [] } : this.dir(r, rel.slice(0, i), 0);
    return parent ? (this.step(r, parent, rel.slice(i + 1), followFinal, 0)?.node ?? null) : null;
  }

  /** The node at `path` (from the root) with every link followed, remembered per tree. */
  private dir(r: Resolution, path: string, hops: number): At | null {
    let cache = this.dirs.get(r.trees);
    if (!cache) this.dirs.set(r.trees, (cache = new Map()));
    const key = `${r.root}/${path}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const i = path.lastIndexOf('/');
    const parent = i < 0 ? { node: r.trees[r.root], real: [] } : this.dir(r, path.slice(0, i), hops);
    const at = parent ? this.step(r, parent, path.slice(i + 1), true, hops) : null;
    cache.set(key, at);
    return at;
  }

  /** One component below a resolved directory; a link is followed (relative to that directory) when asked. */
  private step(r: Resolution, parent: At, name: string, follow: boolean, hops: number): At | null {
    const d = parent.node;
    if (d.t !== 'd') {
      if (d.t === 'f' || d.t === 'c') throw new SysfsError(r.op, this.display(r.root, r.rel), 'ENOTDIR');
      return null;
    }
    const next = d.c.get(name);
    if (!next) return null;
    if (next.t !== 'l' || !follow) return { node: next, real: [...parent.real, name] };
    if (hops + 1 > MAX_LINKS) throw new SysfsError(r.op, this.display(r.root, r.rel), 'ELOOP');
    const target = next.target.startsWith('/') ? [] : [...parent.real];
    for (const part of next.target.split('/')) {
      if (part === '' || part === '.') continue;
      if (part !== '..') target.push(part);
      else if (target.pop() === undefined) return null; // above the root: nothing there
    }
    if (target.length === 0) return { node: r.trees[r.root], real: [] };
    const last = target.pop()!;
    const up = target.length === 0 ? { node: r.trees[r.root], real: [] } : this.dir(r, target.join('/'), hops + 1);
    return up ? this.step(r, up, last, true, hops + 1) : null;
  }

  read(root: Root, rel: string): string {
    const node = this.resolve(root, rel, true, 'read');
    if (!node) throw new SysfsError('read', this.display(root, rel), 'ENOENT');
    if (node.t === 'd') throw new SysfsError('read', this.display(root, rel), 'EISDIR');
    if (node.t !== 'f') throw new SysfsError('read', this.display(root, rel), 'EINVAL');
    return node.read();
  }

  write(root: Root, rel: string, data: string): void {
    let err: SysfsError | null = null;
    try {
      const node = this.resolve(root, rel, true, 'write');
      if (!node) throw new SysfsError('write', this.display(root, rel), 'ENOENT');
      if (node.t === 'd') throw new SysfsError('write', this.display(root, rel), 'EISDIR');
      if (node.t !== 'f' || !node.write) throw new SysfsError('write', this.display(root, rel), 'EACCES', 'read-only attribute');
      try {
        node.write(data);
      } catch (e) {
        if (e instanceof SysfsError) throw new SysfsError('write', this.display(root, rel), e.code, e.detail);
        throw e;
      }
    } catch (e) {
      if (e instanceof SysfsError) err = e;
      throw e;
    } finally {
      this.onWrite(root, rel, data, err);
    }
  }

  readlink(root: Root, rel: string): string {
    const node = this.resolve(root, rel, false, 'readlink');
    if (!node) throw new SysfsError('readlink', this.display(root, rel), 'ENOENT');
    if (node.t !== 'l') throw new SysfsError('readlink', this.display(root, rel), 'EINVAL', 'not a symbolic link');
    return node.target;
  }

  list(root: Root, rel: string): string[] {
    const node = this.resolve(root, rel, true, 'list');
    if (!node) throw new SysfsError('list', this.display(root, rel), 'ENOENT');
    if (node.t !== 'd') throw new SysfsError('list', this.display(root, rel), 'ENOTDIR');
    return [...node.c.keys()];
  }

  kind(root: Root, rel: string): EntryKind | null {
    let node: VNode | null;
    try {
      node = this.resolve(root, rel, false, 'stat');
    } catch {
      return null;
    }
    if (!node) return null;
    return node.t === 'd' ? 'dir' : node.t === 'f' ? 'file' : node.t === 'l' ? 'link' : 'device';
  }

  exists(root: Root, rel: string): boolean {
    try {
      return this.resolve(root, rel, true, 'stat') !== null;
    } catch {
      return false;
    }
  }
}
