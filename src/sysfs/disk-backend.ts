import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertSafeRelative, type EntryKind, type Root, type SysfsBackend } from './backend.js';
import { fromNodeError } from './errors.js';

export interface DiskRoots {
  /** Where /sys is: `/sys` on a host, `<dir>/sys` for a capture or simulator tree. */
  sys: string;
  /** Where /dev is. */
  dev: string;
  /** The host's `/` (for /lib/modules and /usr/lib/nvidia). */
  host: string;
}

/** A backend over real directories: the host, a capture, or a materialised simulator tree. */
export class DiskBackend implements SysfsBackend {
  readonly description: string;
  private readonly buf = Buffer.allocUnsafe(1 << 16);
  /** True when `sys` is a mounted sysfs (a live kernel), false for a plain directory tree. */
  readonly live: boolean;

  constructor(readonly roots: DiskRoots) {
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
    // open/read/close with a reused buffer: sysfs attributes are small and this is
    // several times cheaper than readFileSync for the thousands of reads an inventory makes.
    let fd: number;
    try {
      fd = fs.openSync(p, 'r');
    } catch (err) {
      throw fromNodeError('read', p, err);
    }
    try {
      let total = 0;
      for (;;) {
        const want = this.buf.length - total;
        const n = fs.readSync(fd, this.buf, total, want, null);
        total += n;
        // A short read is the end: a sysfs attribute returns its whole value in the first
        // read(2), and a regular file reads short only at EOF. This saves the read that
        // would return 0 on every one of the thousands of files an inventory reads.
        if (n === 0 || n < want) break;
        if (total === this.buf.length) {
          // Larger than an attribute should be; fall back to a full read.
          return fs.readFileSync(p, 'utf8');
        }
      }
      return this.buf.toString('utf8', 0, total);
    } catch (err) {
      throw fromNodeError('read', p, err);
    } finally {
      fs.closeSync(fd);
    }
  }

  write(root: Root, rel: string, data: string): void {
    const p = this.abs(root, rel);
    let fd: number;
    try {
      // 'r+' like the kernel's attribute files: never create a file that is not there.
      fd = fs.openSync(p, 'r+');
    } catch (err) {
      throw fromNodeError('write', p, err);
    }
    try {
      const b = Buffer.from(data, 'utf8');
      fs.writeSync(fd, b, 0, b.length, 0);
      // On a plain directory tree (capture, materialised simulator) drop stale tail bytes;
      // a kernel attribute takes the single write(2) as the whole value.
      if (!this.live) fs.ftruncateSync(fd, b.length);
    } catch (err) {
      throw fromNodeError('write', p, err);
    } finally {
      fs.closeSync(fd);
    }
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

const SYSFS_MAGIC = 0x62656572;

function isSysfsMount(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === SYSFS_MAGIC;
  } catch {
    return false;
  }
}
