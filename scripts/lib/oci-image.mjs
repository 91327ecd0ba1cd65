// Writes a single-layer OCI image as an OCI-layout tar that `ctr images import` accepts, from
// a directory holding the image's root file system. The test node has no registry: its
// images are made here from files on this machine (busybox-static, the pause program).
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { create as tarCreate } from 'tar';

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const EPOCH = new Date(0); // fixed times: the same inputs give the same image digest

/**
 * Builds `out` (an OCI-layout tar) for the image `name` (e.g. vmgpu.test/busybox:1.35.0)
 * from `rootfs`, with the image config's `Entrypoint`/`Cmd`/`Env`. Returns the manifest digest.
 */
export function writeOciImage({ rootfs, name, out, entrypoint, cmd = [], env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] }) {
  const work = mkdtempSync(join(dirname(out), '.oci-'));
  try {
    const blobs = join(work, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const layerTmp = join(work, 'layer.tar');
    tarCreate({ cwd: rootfs, file: layerTmp, sync: true, portable: true, mtime: EPOCH }, readdirSync(rootfs).sort());
    const layer = readFileSync(layerTmp);
    rmSync(layerTmp);
    const blob = (buf) => {
      const digest = sha256(buf);
      writeFileSync(join(blobs, digest), buf);
      return { digest: `sha256:${digest}`, size: buf.length };
    };
    const layerRef = blob(layer);
    const config = blob(
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Entrypoint: entrypoint, Cmd: cmd, Env: env, WorkingDir: '/' },
          rootfs: { type: 'layers', diff_ids: [layerRef.digest] },
          history: [{ created: EPOCH.toISOString(), created_by: 'vmgpu scripts/build-node-tools.mjs' }],
        }),
      ),
    );
    const manifest = blob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerRef }],
        }),
      ),
    );
    const tag = name.slice(name.lastIndexOf(':') + 1);
    writeFileSync(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      join(work, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tag },
          },
        ],
      }),
    );
    const tmpOut = `${out}.tmp-${process.pid}`;
    tarCreate({ cwd: work, file: tmpOut, sync: true, portable: true, mtime: EPOCH }, ['oci-layout', 'index.json', 'blobs']);
    renameSync(tmpOut, out);
    return manifest.digest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
