/**
 * Which VFIO devices are open right now: every process's open files under
 * /proc/<pid>/fd that point at /dev/vfio/<group> or /dev/vfio/devices/vfioN
 * (a running QEMU holds its vGPU's group or cdev open). Part of the port room:
 * it reads the host's /proc, with a configurable root, and builds no path from
 * anything but decimal PIDs and fd numbers.
 */
import * as fs from 'node:fs';

export interface VfioUser {
  pid: number;
  command: string;
  /** `group` for /dev/vfio/<n>, `cdev` for /dev/vfio/devices/vfio<n>. */
  kind: 'group' | 'cdev';
  /** The group number or the cdev name (`vfio3`). */
  id: string;
}

export function openVfioDevices(procRoot = '/proc', devPrefix = '/dev'): VfioUser[] {
  const out: VfioUser[] = [];
  let pids: string[];
  try {
    pids = fs.readdirSync(procRoot).filter((p) => /^[0-9]{1,10}$/.test(p));
  } catch {
    return out;
  }
  const groupRe = new RegExp(`^${devPrefix.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/vfio/([0-9]+)$`);
  const cdevRe = new RegExp(`^${devPrefix.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/vfio/devices/(vfio[0-9]+)$`);
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`${procRoot}/${pid}/fd`).filter((f) => /^[0-9]{1,10}$/.test(f));
    } catch {
      continue; // gone, or not ours to read
    }
    let command: string | null = null;
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`${procRoot}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const g = groupRe.exec(target);
      const c = g ? null : cdevRe.exec(target);
      if (!g && !c) continue;
      if (command === null) {
        try {
          command = fs.readFileSync(`${procRoot}/${pid}/comm`, 'utf8').trim();
        } catch {
          command = '?';
        }
      }
      out.push({ pid: Number(pid), command, kind: g ? 'group' : 'cdev', id: (g ?? c)![1]! });
    }
  }
  return out;
}
