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

/** A SysfsBackend over in-memory trees. `trees()` is called on every access so the owner can rebuild them. */
export class VirtualBackend implements SysfsBackend {
  constructor(
    readonly description: string,
    private readonly trees: () => Trees,
    private readonly onWrite: (root: Root, rel: string, data: string, error: SysfsError | null) => void = () => {},
  ) {}

  display(root: Root, rel: string): string {
    const base = root === 'sys' ? '/sys' : root === 'dev' ? '/dev' : '';
    return rel ? `${base}/${rel}` : base || '/';
  }

  private resolve(root: Root, rel: string, followFinal: boolean, op: SysfsError['op']): VNode | null {
    assertSafeRelative(rel);
    const tree = this.trees()[root];
    let parts = rel.split('/').filter(Boolean);
    let stack: VNode[] = [tree];
    let hops = 0;
    for (let i = 0; i < parts.length; i++) {
      const cur = stack[stack.length - 1]!;
      if (cur.t !== 'd') {
        if (cur.t === 'f' || cur.t === 'c') throw new SysfsError(op, this.display(root, rel), 'ENOTDIR');
        return null;
      }
      const next = cur.c.get(parts[i]!);
      if (!next) return null;
      const last = i === parts.length - 1;
      if (next.t === 'l' && (!last || followFinal)) {
        if (++hops > MAX_LINKS) throw new SysfsError(op, this.display(root, rel), 'ELOOP');
        // Resolve the link relative to the directory that holds it.
        const base = stack.length - 1;
        const targetParts = next.target.split('/').filter(Boolean);
        const rest = parts.slice(i + 1);
        let depth = base; // index in stack of the link's parent directory
        const newPrefix: string[] = [];
        if (next.target.startsWith('/')) depth = 0;
        let ok = true;
        for (const tp of targetParts) {
          if (tp === '..') {
            if (depth === 0) {
              ok = false;
              break;
            }
            depth--;
          } else if (tp !== '.') newPrefix.push(tp);
        }
        if (!ok) return null;
        // Re-walk from the stack element at `depth` along newPrefix + rest.
        stack = stack.slice(0, depth + 1);
        // Invariant: stack[k] is the node named by parts[k - 1].
        parts = [...parts.slice(0, depth), ...newPrefix, ...rest];
        i = depth - 1;
        continue;
      }
      stack.push(next);
    }
    return stack[stack.length - 1]!;
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
