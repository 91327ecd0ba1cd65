// The test node (test/harness/node.ts) leaves the machine as it found it: after stop(), and
// after the test process is killed outright (the watchdog), no process of the node is alive,
// and no cgroup, mount, sysctl value or file outside its directory is left or changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { CoreV1Api } from '@kubernetes/client-node';
import { startNode, type TestNode } from '../harness/node.js';
import { KUBELET_SYSCTLS, leftoverCgroups } from '../harness/node-isolation.js';
import { probePod, probeResult } from '../harness/node-pods.js';

// Paths the kubelet, containerd or util-linux would create on a machine without isolation.
const HOST_PATHS = ['/run/containerd', '/run/mount', '/var/lib/kubelet', '/var/lib/containerd', '/var/log/pods', '/var/log/containers', '/dev/vfio', '/opt/containerd', '/etc/cdi', '/var/run/cdi', '/etc/kubernetes'];

interface Machine {
  mounts: string[];
  sysctls: Record<string, string>;
  paths: Record<string, boolean>;
}

function machine(): Machine {
  return {
    // mount point and file system type of every mount the test process sees (the machine's namespace)
    mounts: readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').map((l) => { const f = l.split(' '); return `${f[4]} ${f[f.indexOf('-') + 1]}`; }).sort(),
    sysctls: Object.fromEntries(KUBELET_SYSCTLS.map((s) => [s, readFileSync(`/proc/sys/${s}`, 'utf8').trim()])),
    paths: Object.fromEntries(HOST_PATHS.map((p) => [p, existsSync(p)])),
  };
}

/** PID -> start time of every process of the node: daemons, shims (its mount namespace) and containers (its cgroups). */
function nodeProcesses(node: TestNode): Map<number, string> {
  const pids = new Set<number>(Object.values(node.pids()));
  const ns = readFileSync(join(node.dir, 'ns-id'), 'utf8');
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`${node.cgroupRoot}/`) || readlinkSync(`/proc/${p}/ns/mnt`) === ns) pids.add(Number(p));
    } catch {
      /* exited */
    }
  }
  return new Map([...pids].map((pid) => [pid, startTime(pid)]));
}

function startTime(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
  } catch {
    return 'gone';
  }
}

/** The PIDs that still run the same process (same start time) and are not zombies. */
function alive(procs: Map<number, string>): number[] {
  return [...procs]
    .filter(([pid, t]) => {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return f[19] === t && f[0] !== 'Z';
      } catch {
        return false;
      }
    })
    .map(([pid]) => pid);
}

async function runPod(node: TestNode): Promise<void> {
  const core = node.cp.kubeConfig.makeApiClient(CoreV1Api);
  const outDir = join(node.dir, 'pod-out');
  const pod = probePod({ name: 'teardown-probe', namespace: 'default', image: node.images.busybox, outDir });
  await core.createNamespacedPod({ namespace: 'default', body: pod });
  await probeResult(core, pod, outDir);
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('stop(): no process, cgroup, mount, sysctl change or file is left behind', { timeout: 300_000 }, async () => {
  const before = machine();
  const node = await startNode();
  let procs: Map<number, string>;
  try {
    await runPod(node); // containers, a shim and overlay mounts to clean up
    procs = nodeProcesses(node);
    assert.ok(procs.size >= 8, `the node's processes were found: ${[...procs.keys()].join(' ')}`);
    assert.deepEqual(machine(), before, 'while the node runs, the machine is unchanged too');
  } finally {
    await node.stop();
  }
  assert.deepEqual(alive(procs), [], 'no process of the node is alive');
  assert.deepEqual(leftoverCgroups(node.cgroupRoot.slice(1)), []);
  assert.equal(existsSync(node.dir), false, 'the node directory is removed');
  assert.deepEqual(machine(), before);
});

test('the test process killed with SIGKILL: the watchdog removes the node', { timeout: 300_000 }, async () => {
  const before = machine();
  const harness = resolve(import.meta.dirname, '..', 'harness', 'node.ts');
  const script = `import { startNode } from ${JSON.stringify(harness)};
const n = await startNode();
console.log(JSON.stringify({ dir: n.dir, cgroup: n.cgroupRoot, pids: n.pids() }));
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', res);
    child.once('exit', (code) => rej(new Error(`the child exited (${code}) before its node was up`)));
  });
  const info = JSON.parse(line) as { dir: string; cgroup: string; pids: Record<string, number> };
  const procs = new Map(Object.values(info.pids).map((pid) => [pid, startTime(pid)]));
  child.kill('SIGKILL');
  await until('every node process gone, cgroups and directory removed', () => alive(procs).length === 0 && leftoverCgroups(info.cgroup.slice(1)).length === 0 && !existsSync(info.dir), 60_000);
  assert.deepEqual(machine(), before);
});
