/**
 * KEP-5304 device metadata: per prepared request, a JSON stream with the same
 * DeviceMetadata once per API version, newest first (metadata.resource.k8s.io
 * v1beta1, which 1.37 readers expect, then v1alpha1, the only version KubeVirt
 * 1.9 reads). The file lives under the plugin's data directory and reaches
 * the container through a CDI bind mount at the well-known path:
 *
 *   host:      <plugin data dir>/dra-device-metadata/<ns>_<claim>/<request>/metadata.json
 *   container: /var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claim>/<request>/gpu.vmgpu.io-metadata.json
 *              (resourceclaimtemplates/<pod claim name>/... for a claim made from a template)
 *
 * KubeVirt takes the address of the device the VM gets from
 * `resource.kubernetes.io/pciBusID` (the VF, or the whole GPU), or an mdev's
 * UUID from the unqualified `mdevUUID`, which it checks first.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../io/files.js';
import type { Attribute } from './devices.js';
import { DRIVER_NAME } from './names.js';

const METADATA_VERSIONS = ['metadata.resource.k8s.io/v1beta1', 'metadata.resource.k8s.io/v1alpha1'] as const;
const CONTAINER_METADATA_DIR = '/var/run/kubernetes.io/dra-device-attributes';
export const MDEV_UUID_ATTRIBUTE = 'mdevUUID';

export interface MetadataDevice {
  pool: string;
  name: string;
  attributes: Record<string, Attribute>;
}

export interface ClaimRef {
  namespace: string;
  name: string;
  uid: string;
  podClaimName: string | null;
}

const SEGMENT_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function segment(s: string, what: string): string {
  if (!SEGMENT_RE.test(s)) throw new Error(`${what} ${JSON.stringify(s)} is not a Kubernetes name`);
  return s;
}

export class MetadataWriter {
  constructor(readonly pluginDataDir: string) {}

  private claimDir(ref: ClaimRef): string {
    return path.join(this.pluginDataDir, 'dra-device-metadata', `${segment(ref.namespace, 'namespace')}_${segment(ref.name, 'claim name')}`);
  }

  hostFile(ref: ClaimRef, request: string): string {
    return path.join(this.claimDir(ref), segment(request, 'request name'), 'metadata.json');
  }

  containerFile(ref: ClaimRef, request: string): string {
    const [sub, name] = ref.podClaimName ? ['resourceclaimtemplates', ref.podClaimName] : ['resourceclaims', ref.name];
    return path.posix.join(CONTAINER_METADATA_DIR, sub, segment(name, 'claim name'), segment(request, 'request name'), `${DRIVER_NAME}-metadata.json`);
  }

  /** Write the request's file (atomically); returns its host path. */
  write(ref: ClaimRef, request: string, devices: readonly MetadataDevice[]): string {
    const file = this.hostFile(ref, request);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    writeFileAtomic(file, metadataStream(ref, request, devices));
    return file;
  }

  remove(ref: ClaimRef): void {
    fs.rmSync(this.claimDir(ref), { recursive: true, force: true });
  }
}

/** The file's content: one DeviceMetadata object per version, newest first, one per line. */
export function metadataStream(ref: ClaimRef, request: string, devices: readonly MetadataDevice[]): string {
  return METADATA_VERSIONS.map((apiVersion) =>
    JSON.stringify({
      kind: 'DeviceMetadata',
      apiVersion,
      metadata: { name: ref.name, namespace: ref.namespace, uid: ref.uid, generation: 1 },
      ...(ref.podClaimName ? { podClaimName: ref.podClaimName } : {}),
      requests: [{ name: request, devices: devices.map((d) => ({ driver: DRIVER_NAME, pool: d.pool, name: d.name, attributes: d.attributes })) }],
    }),
  ).join('\n') + '\n';
}
