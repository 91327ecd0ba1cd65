/**
 * The NVIDIA host driver's user-space tools as a container sees them: its
 * `nvidia-smi` and `libnvidia-ml.so.1` under a mounted driver root (the
 * host's own directories, or the GPU Operator's driver container at
 * /run/nvidia/driver), found where distributions put them.
 *
 * nvidia-smi runs with the container's C library and only libnvidia-ml from
 * the root: the library is linked into a private directory, and that
 * directory alone goes on LD_LIBRARY_PATH, so no other host library (the
 * host's libc) is picked up. Links are followed only within their own
 * directory (libnvidia-ml.so.1 -> libnvidia-ml.so.<version>); nothing that
 * leads out of the root is used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const BIN_DIRS = ['usr/bin', 'usr/sbin', 'bin'];
/** Debian/Ubuntu, RHEL-family and arm64 layouts, host installs and driver containers alike. */
const LIB_DIRS = ['usr/lib/x86_64-linux-gnu', 'usr/lib64', 'usr/lib/aarch64-linux-gnu', 'usr/lib', 'lib/x86_64-linux-gnu', 'lib64', 'lib/aarch64-linux-gnu'];
const NVML = 'libnvidia-ml.so.1';
const SAME_DIR_TARGET = /^[A-Za-z0-9._+-]{1,128}$/;

export type DriverTools = { found: true; nvidiaSmi: string; libraryPath: string } | { found: false; why: string };

/** nvidia-smi and a library path holding only libnvidia-ml.so.1, under `root`; `scratch` receives the private library directory. */
export function driverToolsAt(root: string, scratch: string): DriverTools {
  const smi = firstRegularFile(root, BIN_DIRS, 'nvidia-smi');
  if ('why' in smi) return { found: false, why: smi.why };
  const lib = firstRegularFile(root, LIB_DIRS, NVML);
  if ('why' in lib) return { found: false, why: lib.why };
  try {
    const dir = fs.mkdtempSync(path.join(scratch, 'vmgpu-nvml-'));
    fs.symlinkSync(lib.path, path.join(dir, NVML));
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    return { found: true, nvidiaSmi: smi.path, libraryPath: dir };
  } catch (err) {
    return { found: false, why: `cannot prepare a library directory for ${NVML} under ${scratch}: ${(err as Error).message}` };
  }
}

/** The first `dir/name` under root that is a regular file, or reached by a link within its directory. */
function firstRegularFile(root: string, dirs: readonly string[], name: string): { path: string } | { why: string } {
  for (const dir of dirs) {
    const p = path.join(root, dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue;
    }
    if (st.isFile()) return { path: p };
    if (!st.isSymbolicLink()) return { why: `${p} is not a regular file` };
    const target = fs.readlinkSync(p);
    if (!SAME_DIR_TARGET.test(target) || target === '..' || target === '.') return { why: `${p} links out of its directory (to ${target}), which vmgpu does not follow` };
    const real = path.join(root, dir, target);
    if (!fs.lstatSync(real, { throwIfNoEntry: false })?.isFile()) return { why: `${p} links to ${target}, which is not a regular file` };
    return { path: real };
  }
  return { why: `no ${name} under ${root} (looked in ${dirs.join(', ')})` };
}
