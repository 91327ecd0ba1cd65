// Isolation of the test node from the machine: a private mount namespace for containerd and
// the kubelet, its own cgroup root, and a cleanup that removes every trace by PID, mount
// namespace and cgroup (also from a watchdog when the test process dies without cleaning up).
//
// The namespace is held by `unshare --mount … sleep infinity`; its mounts disappear with its
// last process. In it:
//   /run             private tmpfs (containerd's shim sockets and runc state are under /run/containerd)
//   /dev             overlay over the machine's /dev, with dummy /dev/vfio/{vfio,N,devices/vfioN}
//                    character devices (1:3, like /dev/null) for the simulated GPUs' device plugin
//   /var/lib         private tmpfs; /var/lib/kubelet is <dir>/kubelet-root (hard-coded plugin paths)
//   /var/log         <dir>/var-log (/var/log/pods, /var/log/containers)
//   /proc/sys/...    the sysctls the kubelet rewrites, each shadowed by a private file
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Host-global sysctls the kubelet sets at start (setupKernelTunables and friends). */
export const KUBELET_SYSCTLS = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];
const CGROUP_FS = '/sys/fs/cgroup';
/** Dummy /dev/vfio/N and /dev/vfio/devices/vfioN nodes made by default (a node of 8 simulated GPUs needs more). */
const VFIO_NODES = 128;

function need(cond: boolean, why: string): void {
  if (!cond) throw new Error(`the test node cannot start: ${why}`);
}

/** Fails loudly, with the reason, when the machine lacks what the node needs. */
export function checkPrerequisites(): void {
  need(process.getuid?.() === 0, 'it must run as root (mount namespaces, cgroups, mknod); run the integration tests as root');
  for (const tool of ['unshare', 'nsenter', 'mount', 'mknod', 'mountpoint']) {
    need(spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0, `the \`${tool}\` command is missing (Debian: apt-get install -y util-linux mount coreutils)`);
  }
  need(readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n'), 'the kernel has no overlay file system (modprobe overlay)');
  need(existsSync(join(CGROUP_FS, 'memory', 'cgroup.procs')) || existsSync(join(CGROUP_FS, 'cgroup.controllers')), `no cgroup file system under ${CGROUP_FS}`);
}

// ---- cgroups ---------------------------------------------------------------------------

/** The v1 hierarchies (every directory under /sys/fs/cgroup except the unified one), or [] on a pure v2 host. */
function hierarchies(): string[] {
  if (existsSync(join(CGROUP_FS, 'cgroup.controllers'))) return [CGROUP_FS];
  return readdirSync(CGROUP_FS).filter((d) => d !== 'unified' && existsSync(join(CGROUP_FS, d, 'cgroup.procs'))).map((d) => join(CGROUP_FS, d));
}

/** Creates /<name> in every hierarchy (the kubelet checks that its cgroupRoot exists). */
export function createCgroupRoot(name: string): void {
  for (const h of hierarchies()) {
    const dir = join(h, name);
    mkdirSync(dir, { recursive: true });
    // A new cpuset is empty; tasks cannot join it until it has CPUs and memory nodes.
    if (h.endsWith('/cpuset')) for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(dir, f), readFileSync(join(h, f)));
  }
}

/** Every cgroup directory named `name` at the top of a hierarchy that still exists. */
export function leftoverCgroups(name: string): string[] {
  return hierarchies().map((h) => join(h, name)).filter((d) => existsSync(d));
}

// ---- mount namespace ---------------------------------------------------------------------

const SETUP = `
set -eu
W="$1"; N="$2"; shift 2
m() { mount -n "$@"; }   # -n: util-linux would otherwise create /run/mount on the machine
m -t tmpfs -o mode=755 tmpfs /run
m --rbind /dev "$W/ns/dev-lower"
m -t overlay overlay -o "lowerdir=/dev,upperdir=$W/ns/dev-upper,workdir=$W/ns/dev-work" /dev
for s in pts shm mqueue hugepages; do
  if mountpoint -q "$W/ns/dev-lower/$s"; then m --rbind "$W/ns/dev-lower/$s" "/dev/$s"; fi
done
mkdir -p /dev/vfio/devices
mknod -m 666 /dev/vfio/vfio c 1 3
i=0; while [ $i -lt "$N" ]; do mknod -m 666 /dev/vfio/$i c 1 3; mknod -m 666 /dev/vfio/devices/vfio$i c 1 3; i=$((i+1)); done
m -t tmpfs -o mode=755 tmpfs /var/lib
mkdir -p /var/lib/kubelet
m --bind "$W/kubelet-root" /var/lib/kubelet
m --bind "$W/var-log" /var/log
for s in "$@"; do m --bind "$W/ns/sysctl/$(echo "$s" | tr / .)" "/proc/sys/$s"; done
`;

export interface MountNamespace {
  /** PID of the process holding the namespace (`sleep infinity`). */
  holderPid: number;
  /** readlink /proc/<pid>/ns/mnt of the namespace, e.g. mnt:[4026532281]. */
  id: string;
  /** Prefix for a command run in the namespace: nsenter -t PID -m --. */
  enter(cmd: string[]): string[];
}

/** Creates and sets up the namespace; `dir` is the node's directory. */
export function createMountNamespace(dir: string, vfioNodes = VFIO_NODES): MountNamespace {
  for (const d of ['ns/dev-lower', 'ns/dev-upper', 'ns/dev-work', 'ns/sysctl', 'kubelet-root', 'var-log']) mkdirSync(join(dir, d), { recursive: true });
  for (const s of KUBELET_SYSCTLS) writeFileSync(join(dir, 'ns', 'sysctl', s.replaceAll('/', '.')), readFileSync(`/proc/sys/${s}`));
  const holder = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sleep', 'infinity'], { detached: true, stdio: 'ignore' });
  holder.unref();
  const pid = holder.pid;
  if (!pid) throw new Error('could not start `unshare --mount` (the mount namespace holder)');
  writeFileSync(join(dir, 'ns-holder.pid'), String(pid));
  const self = readlinkSync('/proc/self/ns/mnt');
  let id = self;
  const deadline = Date.now() + 5000;
  while (id === self) {
    try {
      id = readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch (e) {
      throw new Error(`the mount namespace holder (unshare, pid ${pid}) exited at once: ${(e as Error).message}. Does this kernel allow mount namespaces?`, { cause: e });
    }
    if (id === self && Date.now() > deadline) throw new Error(`unshare (pid ${pid}) did not enter a new mount namespace within 5 s`);
  }
  writeFileSync(join(dir, 'ns-id'), id);
  const enter = (cmd: string[]): string[] => ['nsenter', '-t', String(pid), '-m', '--', ...cmd];
  try {
    execFileSync(enter(['sh'])[0]!, [...enter(['sh', '-c', SETUP, 'vmgpu-node-setup', dir, String(vfioNodes), ...KUBELET_SYSCTLS]).slice(1)], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`setting up the node's mount namespace failed: ${err.stderr?.toString().trim() || (e as Error).message}`, { cause: e });
  }
  return { holderPid: pid, id, enter };
}

// ---- cleanup -----------------------------------------------------------------------------

// Kills everything of one node and removes its traces: the process groups in <dir>/pgids,
// every process in its mount namespace (containerd, kubelet, shims), every process in its
// cgroups (the containers, which runc puts in their own mount namespaces), then the cgroup
// directories (deepest first) and <dir>. Arguments are positional, never interpolated.
const CLEANUP = `
W="$1"; NS="$2"; CG="$3"
kill_all() {
  if [ -f "$W/pgids" ]; then for g in $(cat "$W/pgids"); do kill -KILL "-$g" 2>/dev/null; done; fi
  if [ -n "$NS" ]; then
    for p in /proc/[0-9]*; do
      if [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$NS" ]; then kill -KILL "\${p#/proc/}" 2>/dev/null; fi
    done
  fi
  for c in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"; do
    [ -d "$c" ] || continue
    for pid in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
}
i=0
while [ $i -lt 40 ]; do
  kill_all
  left=0
  for c in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} \\; 2>/dev/null
    [ -d "$c" ] && left=1
  done
  [ $left = 0 ] && break
  sleep 0.25; i=$((i+1))
done
rm -rf -- "$W"
`;

/** Runs CLEANUP now and waits for it (sync: usable from an exit hook). */
export function cleanupSync(dir: string, nsId: string, cgroupName: string): void {
  spawnSync('sh', ['-c', CLEANUP, 'vmgpu-node-cleanup', dir, nsId, cgroupName], { stdio: 'ignore' });
}

/** A detached watchdog that runs CLEANUP once this process is gone (the namespace id is read from <dir>/ns-id then). */
export function startCleanupWatchdog(dir: string, cgroupName: string): { kill(): void } {
  const script = `P="$1"; W="$2"; CG="$3"; while kill -0 "$P" 2>/dev/null; do sleep 1; done; set -- "$W" "$(cat "$W/ns-id" 2>/dev/null)" "$CG"; ${CLEANUP}`;
  const wd = spawn('sh', ['-c', script, 'vmgpu-node-watchdog', String(process.pid), dir, cgroupName], { detached: true, stdio: 'ignore' });
  wd.on('error', () => {
    /* best effort: the exit hooks still clean up */
  });
  wd.unref();
  return {
    kill: () => {
      try {
        if (wd.pid) process.kill(-wd.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    },
  };
}
