/**
 * Where the kubelet's .proto files are: proto/ at the package root, found by
 * walking up from this module. Every kubelet protocol (device plugin,
 * pod-resources, and next DRA) loads its file through here.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Find proto/ by walking up from this module (works from src/ under tsx and from dist/). */
export function findProtoFile(rel: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, rel);
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`cannot find ${rel} above ${dirname(fileURLToPath(import.meta.url))}: the package's proto/ directory is missing; reinstall vmgpu or run from the repository`);
}
