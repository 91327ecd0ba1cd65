import * as fs from 'node:fs';
import * as path from 'node:path';
import { readFdBounded, writeFileAtomic, FileTooLargeError } from '../io/files.js';
import { assertSafeRelative, type EntryKind, type Root, type SysfsBackend } from './backend.js';
import { fromNodeError, SysfsError } from './errors.js';

export interface DiskRoots {
  /** Where /sys is: `/sys` on a host, `<dir>/sys` for a capture or simulator tree. */
  sys: string;
  /** Where /dev is. */
  dev: string;
  /** The host's `/` (for /lib/modules and /usr/lib/nvidia). */
  host: string;
}

export interface DiskBackendOptions {
  /**
   * Refuse every write with EROFS and this reason (a capture archive: evidence
   * of a node, never a node to change).
   */
  readOnly?: string;
  /** Called once, before the first write to a plain directory tree (the simulator marks its tree edited). */
  beforeFirstWrite?: () => void;
}

/** A sysfs attribute is at most a page; 64 KiB covers 64 KiB pages. Anything larger is not an attribute. */
export const MAX_ATTRIBUTE_BYTES = 64 * 1024;
/** Files under the host root (modules.alias: about 1.5 MB on a distribution kernel). */
const MAX_HOST_FILE_BYTES = 16 * 1024 * 1024;

const { O_RDONLY, O_WRONLY, O_NONBLOCK, O_NOFOLLOW } = fs.constants;
/** Symlinks followed while resolving one path, as the kernel's limit. */
const MAX_LINK_HOPS = 40;

/**
 * A backend over real directories: the host, a capture, or a materialised
 * simulator tree.
 *
 * On a mounted sysfs (`live`) reads and writes go straight to the kernel.
 * On a plain directory tree, which anyone could have built, the backend
 * trusts nothing: a read opens only regular files (never a device or a FIFO,
 * which could hang it or never end) and stops at the attribute limit; a write
 * resolves its path one component at a time and refuses any symlink that
 * leads out of the root, naming it, and replaces the file atomically (a
 * temporary file, then rename), so a kill never leaves half a value.
 */
export class DiskBackend implements SysfsBackend {
  readonly description: string;
  private readonly buf = Buffer.allocUnsafe(MAX_ATTRIBUTE_BYTES);
  /** True when `sys` is a mounted sysfs (a live kernel), false for a plain directory tree. */
  readonly live: boolean;
  private readonly realRoots = new Map<Root, string>();
  private wrote = false;

  constructor(
    readonly roots: DiskRoots,
    private readonly opts: DiskBackendOptions = {},
  ) {
    this.live = isSysfsMount(roots.sys);
    this.description = this.live ? `the kernel's sysfs at ${roots.sys}` : `the directory tree at ${roots.sys}`;
  }

  display(root: Root, rel: string): string {
    return rel ? path.join(this.roots[root], rel) : this.roots[root];
  }

  private abs(root: Root, rel: string): string {
    assertSafeRelative(rel);
    return rel ? this.roots[root] + '/' + rel : this.roots[root];
  }

  read(root: Root, rel: string): string {
    const p = this.abs(root, rel);
    let fd: number;
    try {
      // On a plain tree, O_NONBLOCK: opening a FIFO must not wait for a writer.
      fd = fs.openSync(p, this.live ? O_RDONLY : O_RDONLY | O_NONBLOCK);
    } catch (err) {
      throw fromNodeError('read', p, err);
    }
    try {
      if (!this.live) checkPlainFile(fd, 'read', p);
      if (root === 'host') return readFdBounded(fd, p, MAX_HOST_FILE_BYTES).toString('utf8');
      return this.readAttribute(fd, p);
    } catch (err) {
      if (err instanceof SysfsError) throw err;
      if (err instanceof FileTooLargeError) throw new SysfsError('read', p, 'EFBIG', `larger than ${err.limit} bytes; vmgpu reads at most that much from this file`);
      throw fromNodeError('read', p, err);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * open/read/close with a reused buffer: several times cheaper than readFileSync
   * for the thousands of reads an inventory makes. A short read is the end: a
   * sysfs attribute returns its whole value in the first read(2), and a regular
   * file reads short only at EOF, which saves the read that would return 0.
   */
  private readAttribute(fd: number, p: string): string {
    let total = 0;
    for (;;) {
      const want = this.buf.length - total;
      const n = fs.readSync(fd, this.buf, total, want, null);
      total += n;
      if (n === 0 || n < want) break;
      if (total === this.buf.length) {
        if (fs.readSync(fd, Buffer.allocUnsafe(1), 0, 1, null) > 0) throw new FileTooLargeError(p, MAX_ATTRIBUTE_BYTES);
        break;
      }
    }
    return this.buf.toString('utf8', 0, total);
  }

  write(root: Root, rel: string, data: string): void {
    const p = this.abs(root, rel);
    if (this.opts.readOnly) throw new SysfsError('write', p, 'EROFS', this.opts.readOnly);
    if (this.live) return writeKernelAttribute(p, data);
    try {
      const target = this.resolveInside(root, rel);
      const mode = checkWritablePlainFile(target);
      if (!this.wrote) {
        this.wrote = true;
        this.opts.beforeFirstWrite?.();
      }
      writeFileAtomic(target, data, { mode });
    } catch (err) {
      if (err instanceof SysfsError) throw err;
      throw fromNodeError('write', p, err);
    }
  }

  /**
   * The real path of `rel` under a root, resolved one component at a time as
   * the kernel would. A symlink whose target leaves the root is refused with
   * EXDEV (the errno openat2's RESOLVE_BENEATH gives), naming the link.
   */
  private resolveInside(root: Root, rel: string): string {
    const top = this.realRoot(root);
    let parts = rel.split('/');
    let cur = top;
    let hops = 0;
    while (parts.length > 0) {
      const next = `${cur}/${parts.shift()!}`;
      if (!fs.lstatSync(next).isSymbolicLink()) {
        cur = next;
        continue;
      }
      if (++hops > MAX_LINK_HOPS) throw new SysfsError('write', this.display(root, rel), 'ELOOP');
      const target = fs.readlinkSync(next);
      const resolved = path.resolve(cur, target);
      if (resolved !== top && !resolved.startsWith(`${top}/`)) {
        throw new SysfsError(
          'write',
          this.display(root, rel),
          'EXDEV',
          `${next} is a symbolic link to ${target}, which leads out of ${top}; vmgpu never writes outside the tree it was given`,
        );
      }
      // Walk again from the root along the link's target, then the rest.
      parts = [...path.relative(top, resolved).split('/').filter(Boolean), ...parts];
      cur = top;
    }
    return cur;
  }

  private realRoot(root: Root): string {
    let r = this.realRoots.get(root);
    if (r === undefined) {
      r = fs.realpathSync(this.roots[root]);
      this.realRoots.set(root, r);
    }
    return r;
  }

  readlink(root: Root, rel: string): string {
    const p = this.abs(root, rel);
    try {
      return fs.readlinkSync(p);
    } catch (err) {
      throw fromNodeError('readlink', p, err);
    }
  }

  list(root: Root, rel: string): string[] {
    const p = this.abs(root, rel);
    try {
      return fs.readdirSync(p);
    } catch (err) {
      throw fromNodeError('list', p, err);
    }
  }

  kind(root: Root, rel: string): EntryKind | null {
    const p = this.abs(root, rel);
    try {
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) return 'link';
      if (st.isDirectory()) return 'dir';
      if (st.isCharacterDevice() || st.isBlockDevice()) return 'device';
      return 'file';
    } catch {
      return null;
    }
  }

  exists(root: Root, rel: string): boolean {
    return fs.existsSync(this.abs(root, rel));
  }
}

/** A kernel attribute takes the single write(2) as the whole value ('r+': never create a file that is not there). */
function writeKernelAttribute(p: string, data: string): void {
  let fd: number;
  try {
    fd = fs.openSync(p, 'r+');
  } catch (err) {
    throw fromNodeError('write', p, err);
  }
  try {
    const b = Buffer.from(data, 'utf8');
    fs.writeSync(fd, b, 0, b.length, 0);
  } catch (err) {
    throw fromNodeError('write', p, err);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The mode of the plain file at `p`, which must exist and be writable by us,
 * as a kernel attribute must (EACCES for a read-only one, ENOENT when absent:
 * a write never creates an attribute). Opened without following a link and
 * without blocking, so a FIFO or device is refused, never waited on.
 */
function checkWritablePlainFile(p: string): number {
  const fd = fs.openSync(p, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    return checkPlainFile(fd, 'write', p).mode & 0o7777;
  } finally {
    fs.closeSync(fd);
  }
}

/** On a plain tree an attribute is a regular file: a directory is EISDIR, anything else (device, FIFO, socket) EINVAL. */
function checkPlainFile(fd: number, op: 'read' | 'write', p: string): fs.Stats {
  const st = fs.fstatSync(fd);
  if (st.isFile()) return st;
  if (st.isDirectory()) throw new SysfsError(op, p, 'EISDIR');
  throw new SysfsError(op, p, 'EINVAL', 'not a regular file; a directory tree holds attribute values as plain files');
}

const SYSFS_MAGIC = 0x62656572;

function isSysfsMount(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === SYSFS_MAGIC;
  } catch {
    return false;
  }
}
