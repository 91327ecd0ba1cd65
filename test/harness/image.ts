// What the container image runs, for the tests and benchmarks that run it outside a
// container: the esbuild bundle (scripts/bundle.mjs) and the environment deploy/Dockerfile
// gives node (NODE_OPTIONS and the glibc MALLOC_* settings).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..', '..');

/** Build dist/bundle/vmgpu.mjs and return its path; throws with esbuild's output on failure. */
export function buildBundle(): string {
  const r = spawnSync(process.execPath, [join(repo, 'scripts', 'bundle.mjs')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/bundle.mjs failed:\n${r.stdout}\n${r.stderr}`);
  return join(repo, 'dist', 'bundle', 'vmgpu.mjs');
}

/** The image's environment for node, read from deploy/Dockerfile's ENV. */
export function imageEnv(): { NODE_OPTIONS: string; malloc: Record<string, string> } {
  const dockerfile = readFileSync(join(repo, 'deploy', 'Dockerfile'), 'utf8');
  const nodeOptions = /^\s*(?:ENV\s+)?NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1];
  const malloc = Object.fromEntries([...dockerfile.matchAll(/^\s*(?:ENV\s+)?(MALLOC_[A-Z_]+)="([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]));
  if (!nodeOptions || !Object.keys(malloc).length) throw new Error('deploy/Dockerfile: no NODE_OPTIONS="..." or MALLOC_*="..." in its ENV; the image settings the bundle is run with are missing');
  return { NODE_OPTIONS: nodeOptions, malloc };
}

/** Every variable the image's runtime stage sets with ENV (deploy/Dockerfile), plus the base image's PATH. */
export function imageRuntimeEnv(): Record<string, string> {
  const dockerfile = readFileSync(join(repo, 'deploy', 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.search(/^FROM .* AS runtime$/m));
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const m of runtime.matchAll(/^ENV\s+((?:.*\\\n)*.*)$/gm)) {
    for (const kv of m[1]!.matchAll(/([A-Z_][A-Z0-9_]*)=("([^"]*)"|\S+)/g)) env[kv[1]!] = kv[3] ?? kv[2]!;
  }
  if (!env.NODE_OPTIONS) throw new Error('deploy/Dockerfile: no ENV in the runtime stage sets NODE_OPTIONS; the image settings the agent runs with are missing');
  return env;
}
