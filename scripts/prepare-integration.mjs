#!/usr/bin/env node
// Builds what the integration tests run against, once, into ~/.cache/vmgpu
// (override with VMGPU_CACHE). Each step prints what it does; any failure
// exits non-zero with a message saying what is missing and what to run.
import { spawnSync } from 'node:child_process';

const steps = [
  // [description, command, args]
  ['kube-apiserver, etcd, helm, kubelet, kube-scheduler, kube-controller-manager and containerd for the real cluster (built once into the cache; needs Go)', process.execPath, ['scripts/build-k8s-tools.mjs']],
  ["the test node's runc and busybox (Debian packages, unpacked into the cache), pause program and OCI images (needs apt-get and Go)", process.execPath, ['scripts/build-node-tools.mjs']],
  ['Go test peers: fake kubelet device manager and pod-resources server (built once into the cache; needs Go)', process.execPath, ['scripts/build-peers.mjs']],
];

for (const [what, cmd, args] of steps) {
  console.log(`[prepare] ${what}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    console.error(`[prepare] FAILED: ${what} (${r.error ? r.error.message : `exit ${r.status}`}). Run \`${cmd} ${args.join(' ')}\` to see why.`);
    process.exit(1);
  }
}
