/**
 * Plain files, read and written safely: every read has a bound checked while
 * reading (so `/dev/zero`, an endless pipe or a 2 GB file costs at most the
 * bound, never memory), and every replacement is atomic (a temporary file in
 * the same directory, then rename(2): a reader, or the next run after a kill,
 * sees the old content or the new one, never a mix).
 *
 * Used for configs, imports, persisted state, caches and plain directory
 * trees. Kernel attributes on a live sysfs are not plain files: the port
 * writes those with one write(2) (src/sysfs/disk-backend.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** A file held more than its reader accepts. `code` is EFBIG, like the errno. */
export class FileTooLargeError extends Error {
  override readonly name = 'FileTooLargeError';
  readonly code = 'EFBIG';
  constructor(
    readonly file: string,
    readonly limit: number,
  ) {
    super(`${file} holds more than ${limit} bytes`);
  }
}

/** 1 MiB, 4 MiB...: limits as people write them. */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} bytes`;
}

const CHUNK = 64 * 1024;

/**
 * Read a whole file (or standard input, `0`) of at most `limit` bytes.
 * Throws FileTooLargeError as soon as one byte more arrives, or the fs error
 * (ENOENT, EACCES, EISDIR...) as it is.
 */
export function readFileBounded(file: string | 0, limit: number): Buffer {
  const fd = file === 0 ? 0 : fs.openSync(file, 'r');
  try {
    return readFdBounded(fd, file === 0 ? '<stdin>' : file, limit);
  } finally {
    if (fd !== 0) fs.closeSync(fd);
  }
}

/** As readFileBounded, as UTF-8 text. */
export function readTextBounded(file: string | 0, limit: number): string {
  return readFileBounded(file, limit).toString('utf8');
}

/** Read an open descriptor to its end, refusing more than `limit` bytes. */
export function readFdBounded(fd: number, name: string, limit: number): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    // One byte past the limit is enough to know the input is too large.
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, limit + 1 - total));
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      // Standard input may be a non-blocking pipe: wait for the writer.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      throw err;
    }
    if (n === 0) break;
    total += n;
    if (total > limit) throw new FileTooLargeError(name, limit);
    chunks.push(n === buf.length ? buf : buf.subarray(0, n));
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

export interface AtomicWriteOptions {
  /** Mode of the new file (default 0644), set exactly (not masked by the umask). */
  mode?: number;
  /** fsync the file before the rename and the directory after it (state that must survive a power cut). */
  durable?: boolean;
}

/** The name of a temporary file beside `file`: hidden, and never the name of anything vmgpu reads. */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.vmgpu-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Replace `file` with `data` atomically. The temporary file is created with
 * O_EXCL (it never follows or reuses anything already there); rename(2)
 * replaces `file` itself, and a symlink at `file` is replaced, not followed.
 */
export function writeFileAtomic(file: string, data: string | Buffer, opts: AtomicWriteOptions = {}): void {
  const tmp = tempPathFor(file);
  const fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o644);
  try {
    try {
      fs.fchmodSync(fd, opts.mode ?? 0o644);
      const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
      if (opts.durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  if (opts.durable) fsyncDir(path.dirname(file));
}

/**
 * Write `file` without ever writing through what is at its name: created with
 * O_EXCL (one step, the usual case for a marker), or, when something is
 * already there (a stale marker, a planted link), replaced atomically.
 */
export function writeFileNoFollow(file: string, data: string): void {
  try {
    fs.writeFileSync(file, data, { flag: 'wx', mode: 0o644 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    writeFileAtomic(file, data);
  }
}

/** fsync a directory so a rename in it is on disk; some file systems refuse, and the rename is atomic anyway. */
function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // best effort
  }
}
