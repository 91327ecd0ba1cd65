/**
 * `vmgpu capture`: snapshot the part of /sys (and /dev/vfio) the inventory
 * reads, as a .tar.gz a user can attach to a bug report and anyone can replay
 * with `--sysfs-root FILE.tar.gz`.
 *
 * Only attribute files and links are copied. Binary or huge files (`config`,
 * `resource*`, `rom`, anything over 64 KiB) are skipped; write-only files
 * (`bind`, `create`, `remove`...) are recorded empty with their mode so the
 * replayed tree has the same shape.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import { quoteCut } from '../io/cut.js';
import { FileTooLargeError, formatBytes, readFileBounded, readTextBounded, tempPathFor } from '../io/files.js';
import { RELEVANT_MODULES } from '../model/modules.js';

const CAPTURE_META_FILE = 'vmgpu-capture.json';
const MAX_FILE = 64 * 1024;
const SKIP_FILE = /^(config|rom|resource[0-9]*(_wc|_resize)?|resource|vpd|remove_id|new_id|uevent|label)$/;
/** Subdirectories of a PCI device directory worth keeping. */
const DEVICE_SUBDIRS = new Set(['nvidia', 'vfio-dev', 'mdev_supported_types']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface CaptureMeta {
  format: 1;
  createdAt: string;
  hostname: string;
  kernelRelease: string | null;
  nvidiaDriverVersion: string | null;
  sysRoot: string;
  files: number;
  links: number;
  skipped: { path: string; reason: string }[];
}

export interface CaptureOptions {
  sysRoot: string;
  devRoot: string;
  outFile: string;
  kernelRelease: string | null;
}

class Copier {
  files = 0;
  links = 0;
  skipped: { path: string; reason: string }[] = [];
  /** Entries copied so far, with the depth a directory was walked to (a later, deeper copy walks it again). */
  private readonly done = new Map<string, number>();

  constructor(
    private readonly srcRoot: string,
    private readonly dstRoot: string,
  ) {}

  /** Copy one entry (file, link or directory, optionally recursive) at a path relative to the root. */
  copy(rel: string, depth = 0, filter?: (name: string, rel: string) => boolean): void {
    const prev = this.done.get(rel);
    if (prev !== undefined && prev >= depth) return;
    this.done.set(rel, depth);
    const src = path.join(this.srcRoot, rel);
    const dst = path.join(this.dstRoot, rel);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(src);
    } catch {
      return;
    }
    // Files and links are copied once; only a directory is worth walking again, deeper.
    if (prev !== undefined && !st.isDirectory()) return;
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(src), dst);
      this.links++;
      return;
    }
    if (st.isDirectory()) {
      fs.mkdirSync(dst, { recursive: true });
      if (depth > 0) this.copyEntries(rel, depth, filter);
      return;
    }
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      fs.writeFileSync(dst, '', { mode: 0o600 });
      this.files++;
      return;
    }
    if (!st.isFile()) {
      // A FIFO or socket: opening it could wait forever, and it holds no attribute.
      this.skipped.push({ path: src, reason: 'not a regular file' });
      return;
    }
    if (SKIP_FILE.test(path.basename(rel))) {
      this.skipped.push({ path: src, reason: 'binary or not needed' });
      return;
    }
    this.copyFile(src, dst, st);
  }

  private copyEntries(rel: string, depth: number, filter?: (name: string, rel: string) => boolean): void {
    const src = path.join(this.srcRoot, rel);
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(src);
    } catch (err) {
      this.skipped.push({ path: src, reason: (err as NodeJS.ErrnoException).code ?? 'unreadable' });
    }
    for (const e of entries) if (!filter || filter(e, path.join(rel, e))) this.copy(path.join(rel, e), depth - 1, filter);
  }

  /** A regular file, at most MAX_FILE bytes, read without blocking (an attribute may never answer). */
  private copyFile(src: string, dst: string, st: fs.Stats): void {
    let data: Buffer;
    try {
      const fd = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        const buf = Buffer.alloc(MAX_FILE + 1);
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        if (n > MAX_FILE) {
          this.skipped.push({ path: src, reason: `larger than ${MAX_FILE} bytes` });
          return;
        }
        data = buf.subarray(0, n);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      // Write-only attributes (bind, unbind, create, remove) cannot be read: keep them empty.
      if (code === 'EACCES' || code === 'EPERM' || code === 'EIO' || code === 'EINVAL') {
        fs.writeFileSync(dst, '', { mode: st.mode & 0o777 });
        this.files++;
        return;
      }
      this.skipped.push({ path: src, reason: code });
      return;
    }
    fs.writeFileSync(dst, data, { mode: (st.mode & 0o777) | 0o400 });
    this.files++;
  }

  /** Resolve a symlink below the root to a path relative to the root. */
  target(rel: string): string | null {
    try {
      const real = fs.realpathSync(path.join(this.srcRoot, rel));
      const root = fs.realpathSync(this.srcRoot);
      if (real !== root && !real.startsWith(root + path.sep)) return null;
      return path.relative(root, real);
    } catch {
      return null;
    }
  }
}

function readSmall(p: string): string | null {
  try {
    return readTextBounded(p, MAX_FILE).trim();
  } catch {
    return null;
  }
}

/** NVIDIA functions and their IOMMU group companions (audio functions, bridges sharing a group). */
function nvidiaFunctions(sysRoot: string): Set<string> {
  const wanted = new Set<string>();
  for (const d of safeList(path.join(sysRoot, 'bus/pci/devices'))) {
    if (readSmall(path.join(sysRoot, 'bus/pci/devices', d, 'vendor')) === '0x10de') wanted.add(d);
  }
  for (const d of [...wanted]) {
    for (const m of safeList(path.join(sysRoot, 'bus/pci/devices', d, 'iommu_group', 'devices'))) wanted.add(m);
  }
  return wanted;
}

/** One PCI function: its device directory (the parts vmgpu reads), mdev types and instances, its driver; returns its IOMMU group. */
function copyFunction(sys: Copier, sysRoot: string, d: string, wanted: Set<string>): string | null {
  sys.copy(`bus/pci/devices/${d}`);
  const devRel = sys.target(`bus/pci/devices/${d}`);
  if (!devRel) return null;
  sys.copy(devRel, 3, (name, rel) => {
    if (rel.split(path.sep).length - devRel.split(path.sep).length !== 1) return true;
    const st = safeLstat(path.join(sysRoot, rel));
    if (!st) return false;
    return !st.isDirectory() || DEVICE_SUBDIRS.has(name) || UUID.test(name);
  });
  // mdev types need one more level (nvidia-N/devices/<uuid>); mdev instances their nvidia/ dir.
  sys.copy(path.join(devRel, 'mdev_supported_types'), 4);
  for (const e of safeList(path.join(sysRoot, devRel))) if (UUID.test(e)) sys.copy(path.join(devRel, e), 3);
  const driver = sys.target(`bus/pci/devices/${d}/driver`);
  if (driver) sys.copy(driver, 1, (name) => !/^[0-9a-f]{4}:/.test(name) || wanted.has(name));
  const group = safeReadlink(path.join(sysRoot, 'bus/pci/devices', d, 'iommu_group'));
  return group ? path.basename(group) : null;
}


/** What is not per function: IOMMU groups, the drivers' directories, IOMMU units, mdev buses, module versions. */
function copyNodeWide(sys: Copier, sysRoot: string, wanted: Set<string>, groups: Set<string>): void {
  for (const g of groups) sys.copy(`kernel/iommu_groups/${g}`, 2);
  sys.copy('bus/pci/drivers_probe');
  for (const drv of safeList(path.join(sysRoot, 'bus/pci/drivers'))) {
    if (/vfio|nvidia/.test(drv)) sys.copy(`bus/pci/drivers/${drv}`, 1, (name) => !/^[0-9a-f]{4}:/.test(name) || wanted.has(name));
  }
  sys.copy('class/iommu', 1);
  for (const e of safeList(path.join(sysRoot, 'class/iommu'))) {
    const t = sys.target(`class/iommu/${e}`);
    if (t) sys.copy(t);
  }
  sys.copy('class/mdev_bus', 1);
  sys.copy('bus/mdev/devices', 1);
  for (const m of RELEVANT_MODULES) {
    if (!fs.existsSync(path.join(sysRoot, 'module', m))) continue;
    sys.copy(`module/${m}`);
    sys.copy(`module/${m}/version`);
  }
}

/** The staged tree as a .tar.gz, written beside the output and renamed: a capture stopped half-way leaves no half archive. */
async function writeArchive(stage: string, outFile: string): Promise<void> {
  const tmp = tempPathFor(outFile);
  try {
    await tar.c({ gzip: true, file: tmp, cwd: stage, portable: true }, fs.readdirSync(stage));
    fs.chmodSync(tmp, 0o644);
    fs.renameSync(tmp, outFile);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Walk the sysfs subtree vmgpu reads and write it, with metadata, to a .tar.gz. */
export async function capture(opts: CaptureOptions): Promise<CaptureMeta> {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-capture-'));
  try {
    const sys = new Copier(opts.sysRoot, path.join(stage, 'sys'));
    const wanted = nvidiaFunctions(opts.sysRoot);
    const groups = new Set<string>();
    for (const d of [...wanted].sort()) {
      const group = copyFunction(sys, opts.sysRoot, d, wanted);
      if (group) groups.add(group);
    }
    copyNodeWide(sys, opts.sysRoot, wanted, groups);
    const dev = new Copier(opts.devRoot, path.join(stage, 'dev'));
    dev.copy('vfio', 3);
    dev.copy('iommu');

    const meta: CaptureMeta = {
      format: 1,
      createdAt: new Date().toISOString(),
      hostname: os.hostname(),
      kernelRelease: opts.kernelRelease,
      nvidiaDriverVersion: readSmall(path.join(opts.sysRoot, 'module/nvidia/version')),
      sysRoot: opts.sysRoot,
      files: sys.files + dev.files,
      links: sys.links + dev.links,
      skipped: [...sys.skipped, ...dev.skipped],
    };
    fs.writeFileSync(path.join(stage, CAPTURE_META_FILE), JSON.stringify(meta, null, 1) + '\n');
    await writeArchive(stage, opts.outFile);
    return meta;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * What a capture archive may hold. A capture of a 16-GPU host is a few
 * megabytes and a few tens of thousands of entries, each file at most
 * 64 KiB; these bounds are far above that and far below what would hurt.
 */
export const CAPTURE_LIMITS = {
  /** Bytes of the unpacked tar stream, headers and padding included. */
  totalBytes: 128 * 1024 * 1024,
  entries: 200_000,
  fileBytes: 4 * 1024 * 1024,
} as const;

/** Entry types a capture holds; hard links, devices and FIFOs are never extracted. */
const EXTRACTED_TYPES = new Set(['File', 'OldFile', 'Directory', 'SymbolicLink']);

/**
 * Extract a capture archive to a new temporary directory (removed at exit)
 * and return it. Bounded while extracting: the gunzip stops at
 * CAPTURE_LIMITS.totalBytes, and every entry is counted and its size checked
 * from its header before it is written. No mode bit beyond rwx survives.
 */
export function extractCapture(archive: string, limits: { totalBytes: number; entries: number; fileBytes: number } = CAPTURE_LIMITS): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-replay-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const refuse = (why: string, cause?: unknown): never => {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot read the capture archive ${archive}: ${why}; give a .tar.gz written by \`vmgpu capture --out FILE.tar.gz\``, { cause });
  };
  let tarStream: Buffer;
  try {
    tarStream = zlib.gunzipSync(readFileBounded(archive, limits.totalBytes), { maxOutputLength: limits.totalBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof FileTooLargeError || e.code === 'ERR_BUFFER_TOO_LARGE') {
      return refuse(`unpacks to more than ${formatBytes(limits.totalBytes)}; a capture is far smaller (refused while unpacking)`, err);
    }
    return refuse(`${e.code && !e.message.includes(e.code) ? `${e.code}: ` : ''}${e.message}`, err);
  }
  let entries = 0;
  let problem: string | null = null;
  const unpack = new tar.UnpackSync({
    cwd: dir,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    filter: (p, e) => {
      const entry = e as tar.ReadEntry;
      if (problem !== null) return false;
      if (++entries > limits.entries) problem = `holds more than ${limits.entries} entries; a capture holds far fewer`;
      else if (!EXTRACTED_TYPES.has(entry.type)) return false;
      else if (entry.size > limits.fileBytes) problem = `${quoteCut(p).slice(1, -1)} is ${entry.size} bytes; a capture holds no file over ${formatBytes(limits.fileBytes)}`;
      entry.mode = (entry.mode ?? 0o644) & 0o777;
      return problem === null;
    },
  });
  try {
    unpack.end(tarStream);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return refuse(`${e.code && !e.message.includes(e.code) ? `${e.code}: ` : ''}${e.message}`, err);
  }
  if (problem !== null) return refuse(problem);
  if (!fs.existsSync(path.join(dir, 'sys'))) {
    throw new Error(`${archive} is not a vmgpu capture: it has no sys/ directory`);
  }
  return dir;
}

export function readCaptureMeta(base: string): CaptureMeta | null {
  try {
    return JSON.parse(readTextBounded(path.join(base, CAPTURE_META_FILE), CAPTURE_LIMITS.fileBytes)) as CaptureMeta;
  } catch {
    return null;
  }
}

function safeList(p: string): string[] {
  try {
    return fs.readdirSync(p).sort();
  } catch {
    return [];
  }
}

function safeLstat(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

function safeReadlink(p: string): string | null {
  try {
    return fs.readlinkSync(p);
  } catch {
    return null;
  }
}
