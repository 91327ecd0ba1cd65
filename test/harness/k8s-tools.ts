// Where the real Kubernetes binaries built by scripts/build-k8s-tools.mjs live, and a
// clear failure when they are not there. Mirrors the cache layout that script writes:
//   ${VMGPU_CACHE:-~/.cache/vmgpu}/k8s-<kubernetes version>/bin/{kube-apiserver,etcd,helm,…,.complete.json}
// and, for the test node, what scripts/build-node-tools.mjs writes (runc, the OCI images).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface K8sVersions {
  kubernetes: string;
  etcd: string;
  helm: string;
  containerd: string;
  /** The oldest Kubernetes the agent claims to support, and the etcd its release names. */
  oldest: { kubernetes: string; etcd: string };
}

export interface K8sTools {
  versions: K8sVersions;
  /** The release kube-apiserver and etcd are from: the pinned one, or the oldest supported (VMGPU_TEST_KUBERNETES=oldest). */
  apiRelease: { kubernetes: string; etcd: string };
  binDir: string;
  kubeApiserver: string;
  etcd: string;
  helm: string;
}

export interface NodeTools extends K8sTools {
  kubelet: string;
  kubeScheduler: string;
  kubeControllerManager: string;
  containerd: string;
  containerdShim: string;
  ctr: string;
  /** Debian's runc (scripts/build-node-tools.mjs). */
  runc: string;
  /** OCI-layout tars for `ctr images import`, and the names they carry. */
  images: { busybox: { tar: string; name: string }; pause: { tar: string; name: string } };
  debian: Record<string, string>;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_CMD = 'node scripts/build-k8s-tools.mjs';
const PINNED = ['kubernetes', 'etcd', 'helm', 'containerd'] as const;

const VERSION = /^v\d+\.\d+\.\d+$/;

export function pinnedVersions(): K8sVersions {
  const file = join(repoRoot, 'test', 'tools', 'k8s', 'versions.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { oldest?: Record<string, unknown> };
  const check = (name: string, v: unknown): string => {
    if (typeof v !== 'string' || !VERSION.test(v)) throw new Error(`${file}: "${name}" must be a version like v1.2.3, got ${JSON.stringify(v)}`);
    return v;
  };
  const out = Object.fromEntries(PINNED.map((k) => [k, check(k, raw[k])])) as Omit<K8sVersions, 'oldest'>;
  return { ...out, oldest: { kubernetes: check('oldest.kubernetes', raw.oldest?.kubernetes), etcd: check('oldest.etcd', raw.oldest?.etcd) } };
}

/** VMGPU_TEST_KUBERNETES: unset for the pinned release, `oldest` for the oldest supported one. */
function useOldest(): boolean {
  const v = process.env.VMGPU_TEST_KUBERNETES ?? '';
  if (v !== '' && v !== 'oldest') throw new Error(`VMGPU_TEST_KUBERNETES=${v}: use \`oldest\` (the oldest supported kube-apiserver) or leave it unset (the pinned release)`);
  return v === 'oldest';
}

/** The directory the build script caches into for the pinned Kubernetes version. */
function k8sCacheDir(versions: K8sVersions = pinnedVersions()): string {
  const base = process.env.VMGPU_CACHE || join(homedir(), '.cache', 'vmgpu');
  return join(base, `k8s-${versions.kubernetes}`);
}

function missingExecutables(paths: string[]): string[] {
  return paths.filter((p) => {
    try {
      accessSync(p, constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * The built binaries, or an Error saying what is missing and which command builds it.
 * `binDir` overrides the cache location (tests of the failure path use it).
 */
export function k8sTools(binDir?: string): K8sTools {
  const versions = pinnedVersions();
  const dir = binDir ?? join(k8sCacheDir(versions), 'bin');
  const o = useOldest() ? versions.oldest : null;
  const tools: K8sTools = {
    versions,
    apiRelease: o ?? { kubernetes: versions.kubernetes, etcd: versions.etcd },
    binDir: dir,
    kubeApiserver: join(dir, o ? `kube-apiserver-${o.kubernetes}` : 'kube-apiserver'),
    etcd: join(dir, o ? `etcd-${o.etcd}` : 'etcd'),
    helm: join(dir, 'helm'),
  };
  let stamp: Partial<K8sVersions> | null;
  try {
    stamp = JSON.parse(readFileSync(join(dir, '.complete.json'), 'utf8')) as Partial<K8sVersions>;
  } catch {
    stamp = null;
  }
  const pinned = PINNED.map((k) => `${k} ${versions[k]}`).join(', ');
  const stale =
    stamp === null
      ? 'no completed build was found'
      : PINNED.some((k) => stamp[k] !== versions[k]) || JSON.stringify(stamp.oldest) !== JSON.stringify(versions.oldest)
        ? `the build there is for ${PINNED.map((k) => `${k} ${String(stamp[k])}`).join(', ')}, not the pinned ${pinned}`
        : null;
  const missing = missingExecutables([tools.kubeApiserver, tools.etcd, tools.helm]);
  if (stale || missing.length) {
    throw new Error(
      `the Kubernetes test binaries (${pinned}) are not ready in ${dir}: ` +
        `${stale ?? `missing ${missing.join(', ')}`}. Build them with \`${BUILD_CMD}\` (needs Go; takes 20-35 minutes the first time), ` +
        'or run `node scripts/prepare-integration.mjs`.',
    );
  }
  return tools;
}

/** Everything the test node runs: the control plane's binaries, the node's, runc and the images. */
export function nodeTools(): NodeTools {
  const k = k8sTools();
  const bin = (name: string): string => join(k.binDir, name);
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'build-node-tools.mjs'), '--print-dir'], { encoding: 'utf8' });
  const nodeDir = r.stdout.trim();
  type Stamp = { debian?: Record<string, string>; images?: { busybox: string; pause: string } };
  let stamp: Stamp | null;
  try {
    stamp = JSON.parse(readFileSync(join(nodeDir, '.complete.json'), 'utf8')) as Stamp;
  } catch {
    stamp = null;
  }
  const tools: NodeTools = {
    ...k,
    kubelet: bin('kubelet'),
    kubeScheduler: bin('kube-scheduler'),
    kubeControllerManager: bin('kube-controller-manager'),
    containerd: bin('containerd'),
    containerdShim: bin('containerd-shim-runc-v2'),
    ctr: bin('ctr'),
    runc: join(nodeDir, 'bin', 'runc'),
    images: {
      busybox: { tar: join(nodeDir, 'images', 'busybox.tar'), name: stamp?.images?.busybox ?? '' },
      pause: { tar: join(nodeDir, 'images', 'pause.tar'), name: stamp?.images?.pause ?? '' },
    },
    debian: stamp?.debian ?? {},
  };
  const missing = missingExecutables([tools.kubelet, tools.kubeScheduler, tools.kubeControllerManager, tools.containerd, tools.containerdShim, tools.ctr, tools.runc]);
  if (!stamp || missing.length) {
    throw new Error(
      `the test node's binaries are not ready: ${stamp ? `missing ${missing.join(', ')}` : `no completed build in ${nodeDir || '(scripts/build-node-tools.mjs --print-dir failed)'}`}. ` +
        'Build them with `node scripts/prepare-integration.mjs` (needs Go and apt; 20-35 minutes the first time).',
    );
  }
  return tools;
}
