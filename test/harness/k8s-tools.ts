// Where the real Kubernetes binaries built by scripts/build-k8s-tools.mjs live, and a
// clear failure when they are not there. Mirrors the cache layout that script writes:
//   ${VMGPU_CACHE:-~/.cache/vmgpu}/k8s-<kubernetes version>/bin/{kube-apiserver,etcd,helm,.complete.json}
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface K8sVersions {
  kubernetes: string;
  etcd: string;
  helm: string;
}

export interface K8sTools {
  versions: K8sVersions;
  binDir: string;
  kubeApiserver: string;
  etcd: string;
  helm: string;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_CMD = 'node scripts/build-k8s-tools.mjs';

export function pinnedVersions(): K8sVersions {
  const file = join(repoRoot, 'test', 'tools', 'k8s', 'versions.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<Record<keyof K8sVersions, unknown>>;
  const out: Partial<K8sVersions> = {};
  for (const k of ['kubernetes', 'etcd', 'helm'] as const) {
    const v = raw[k];
    if (typeof v !== 'string' || !/^v\d+\.\d+\.\d+$/.test(v)) {
      throw new Error(`${file}: "${k}" must be a version like v1.2.3, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out as K8sVersions;
}

/** The directory the build script caches into for the pinned Kubernetes version. */
export function k8sCacheDir(versions: K8sVersions = pinnedVersions()): string {
  const base = process.env.VMGPU_CACHE || join(homedir(), '.cache', 'vmgpu');
  return join(base, `k8s-${versions.kubernetes}`);
}

/**
 * The built binaries, or an Error saying what is missing and which command builds it.
 * `binDir` overrides the cache location (tests of the failure path use it).
 */
export function k8sTools(binDir?: string): K8sTools {
  const versions = pinnedVersions();
  const dir = binDir ?? join(k8sCacheDir(versions), 'bin');
  const tools: K8sTools = {
    versions,
    binDir: dir,
    kubeApiserver: join(dir, 'kube-apiserver'),
    etcd: join(dir, 'etcd'),
    helm: join(dir, 'helm'),
  };
  let stamp: Partial<K8sVersions> | null;
  try {
    stamp = JSON.parse(readFileSync(join(dir, '.complete.json'), 'utf8')) as Partial<K8sVersions>;
  } catch {
    stamp = null;
  }
  const stale =
    stamp === null
      ? 'no completed build was found'
      : stamp.kubernetes !== versions.kubernetes || stamp.etcd !== versions.etcd || stamp.helm !== versions.helm
        ? `the build there is for kubernetes ${String(stamp.kubernetes)}, etcd ${String(stamp.etcd)}, helm ${String(stamp.helm)}, not the pinned ${versions.kubernetes}/${versions.etcd}/${versions.helm}`
        : null;
  const missing: string[] = [];
  for (const p of [tools.kubeApiserver, tools.etcd, tools.helm]) {
    try {
      accessSync(p, constants.X_OK);
    } catch {
      missing.push(p);
    }
  }
  if (stale || missing.length) {
    throw new Error(
      `the Kubernetes test binaries (kube-apiserver ${versions.kubernetes}, etcd ${versions.etcd}, helm ${versions.helm}) are not ready in ${dir}: ` +
        `${stale ?? `missing ${missing.join(', ')}`}. Build them with \`${BUILD_CMD}\` (needs Go; takes 10-25 minutes the first time), ` +
        'or run `node scripts/prepare-integration.mjs`.',
    );
  }
  return tools;
}
