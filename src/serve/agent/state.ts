/**
 * What the agent last applied, kept on the host so it can be re-applied at
 * boot before the API server is reachable (VFs, vGPU types and mdevs vanish
 * on reboot). Written atomically (a new temp file, fsync, rename, fsync of the
 * dir) and read with a bound.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileTooLargeError, formatBytes, readTextBounded, writeFileAtomic } from '../../io/files.js';

export const STATE_FILE = 'agent-state.json';
/** The state holds a config file (at most 4 MiB) and a little more. */
const MAX_STATE_BYTES = 16 * 1024 * 1024;

/** NVIDIA's `nvidia.com/gpu.workload.config` values, and `vm-dra`: every GPU to the DRA driver (label vmgpu.io/mode=dra). */
export type WorkloadMode = 'container' | 'vm-passthrough' | 'vm-vgpu' | 'vm-dra';
export const WORKLOAD_MODES: readonly WorkloadMode[] = ['container', 'vm-passthrough', 'vm-vgpu'];
const RECORDED_MODES: readonly WorkloadMode[] = [...WORKLOAD_MODES, 'vm-dra'];

/** What to apply: the config file text, the name in it, the workload mode. */
export interface Desired {
  workload: WorkloadMode;
  /** Null for container / vm-passthrough / vm-dra (the file is not used, or only its dra: policy). */
  configName: string | null;
  configText: string;
  /** The file's name, for messages. */
  fileName: string;
}

export interface AppliedState extends Desired {
  version: 1;
  key: string;
  appliedAt: string;
}

/** A stable identity of a desired state: equal keys mean the same layout is wanted. */
export function desiredKey(d: Desired): string {
  const h = createHash('sha256');
  h.update(`${d.workload}\0${d.configName ?? ''}\0`);
  if (d.workload === 'vm-vgpu' || d.workload === 'vm-dra') h.update(d.configText);
  return h.digest('hex').slice(0, 32);
}

export class StateStore {
  readonly file: string;
  constructor(readonly dir: string) {
    this.file = path.join(dir, STATE_FILE);
  }

  load(): AppliedState | null {
    let text: string;
    try {
      text = readTextBounded(this.file, MAX_STATE_BYTES);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      const why = err instanceof FileTooLargeError ? `it holds more than ${formatBytes(MAX_STATE_BYTES)}` : (err as Error).message;
      throw new Error(`cannot read the agent state ${this.file}: ${why}`, { cause: err });
    }
    try {
      const s = JSON.parse(text) as AppliedState;
      if (s?.version !== 1 || typeof s.key !== 'string' || typeof s.configText !== 'string' || !RECORDED_MODES.includes(s.workload)) throw new Error('unexpected content');
      return s;
    } catch (err) {
      throw new Error(`the agent state ${this.file} is corrupt (${(err as Error).message}); delete it and the agent re-applies from the node's label once the API server is reachable`, { cause: err });
    }
  }

  save(d: Desired, appliedAt = new Date()): AppliedState {
    const s: AppliedState = { version: 1, key: desiredKey(d), appliedAt: appliedAt.toISOString(), ...d };
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file, JSON.stringify(s, null, 1) + '\n', { mode: 0o600, durable: true });
    return s;
  }
}
