/**
 * Facts about processes on this host, from /proc: enough to tell whether a
 * process that left its PID in a lock file still runs, and whether this
 * process sees the host's PID namespace (kernel threads are visible only
 * there). Part of the port room: the only other place that reads /proc is
 * vfio-users.ts. Reads are bounded and paths are built from decimal PIDs only.
 */
import * as fs from 'node:fs';

/** Who a process is, stably: a PID is reused, PID + start time + boot is not. */
export interface ProcessIdentity {
  pid: number;
  /** Clock ticks after boot (field 22 of /proc/<pid>/stat). */
  startTime: number | null;
  /** /proc/sys/kernel/random/boot_id: a lock from an earlier boot is stale. */
  bootId: string | null;
  /** The PID namespace (`pid:[4026531836]`): PIDs of another namespace cannot be checked from here. */
  pidNamespace: string | null;
}

function readSmall(path: string): string | null {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, 'r');
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return buf.toString('utf8', 0, n);
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function startTimeOf(pid: number, procRoot: string): number | null {
  const stat = readSmall(`${procRoot}/${pid}/stat`);
  // The command name may contain spaces and parentheses: fields are counted after the last ')'.
  const rest = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = rest?.[19];
  return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : null;
}

export function selfIdentity(procRoot = '/proc'): ProcessIdentity {
  let pidNamespace: string | null;
  try {
    pidNamespace = fs.readlinkSync(`${procRoot}/self/ns/pid`);
  } catch {
    pidNamespace = null;
  }
  return { pid: process.pid, startTime: startTimeOf(process.pid, procRoot), bootId: readSmall(`${procRoot}/sys/kernel/random/boot_id`)?.trim() ?? null, pidNamespace };
}

/**
 * Whether the process a lock file names still runs: false when it is gone
 * (or its PID was reused since), true when it runs, null when this process
 * cannot tell (another PID namespace, or /proc unreadable).
 */
export function processRuns(holder: ProcessIdentity, self: ProcessIdentity = selfIdentity(), procRoot = '/proc'): boolean | null {
  if (holder.bootId && self.bootId && holder.bootId !== self.bootId) return false;
  if (!holder.pidNamespace || holder.pidNamespace !== self.pidNamespace) return null;
  if (!Number.isSafeInteger(holder.pid) || holder.pid <= 0) return false;
  const start = startTimeOf(holder.pid, procRoot);
  if (start === null) return !fs.existsSync(`${procRoot}/${holder.pid}`) ? false : null;
  return holder.startTime === null || start === holder.startTime;
}

/**
 * Whether this process sees the host's PID namespace: kernel threads
 * (kthreadd is PID 2) appear only there. A container without hostPID sees
 * only its own processes, so a scan of /proc for open VFIO files would miss
 * every VM.
 */
export function seesHostProcesses(procRoot = '/proc'): boolean {
  return readSmall(`${procRoot}/2/comm`)?.trim() === 'kthreadd';
}
