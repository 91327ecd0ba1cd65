/**
 * What `nvidia-smi` prints about MIG, parsed: the mode query and the GPU
 * instance table. Formats as NVIDIA's MIG user guide shows them; a line that
 * does not parse is no instance, and output that says nothing is "cannot tell".
 */

export interface MigModeInfo {
  current: boolean;
  pending: boolean;
}

export interface GpuInstanceInfo {
  id: number;
  /** `1g.10gb`, `1g.24gb+gfx`. */
  profile: string;
  profileId: number;
  start: number;
  size: number;
}

/** `nvidia-smi --query-gpu=mig.mode.current,mig.mode.pending --format=csv,noheader`: `Enabled, Disabled`; undefined for `[N/A]` or anything else. */
export function parseMigMode(out: string): MigModeInfo | undefined {
  const m = /^\s*(Enabled|Disabled)\s*,\s*(Enabled|Disabled)\s*$/im.exec(out);
  if (!m) return undefined;
  return { current: m[1]!.toLowerCase() === 'enabled', pending: m[2]!.toLowerCase() === 'enabled' };
}

// `|   0  MIG 3g.20gb          9        2          0:4     |`
const INSTANCE_ROW = /^\|\s*\d+\s+MIG\s+([0-9]+g\.[0-9]+gb(?:\+[a-z.]+)?)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|/;

/** `nvidia-smi mig -lgi` table rows. */
export function parseGpuInstances(out: string): GpuInstanceInfo[] {
  const rows: GpuInstanceInfo[] = [];
  for (const line of out.split('\n')) {
    const m = INSTANCE_ROW.exec(line.trim());
    if (m) rows.push({ profile: m[1]!, profileId: Number(m[2]), id: Number(m[3]), start: Number(m[4]), size: Number(m[5]) });
  }
  return rows.sort((a, b) => a.start - b.start);
}

/** nvidia-smi's answer when a GPU in MIG mode has no instances (an error exit, not an empty table). */
export const NO_INSTANCES = /No GPU instances found/i;

/** nvidia-smi's refusal while something holds the GPU (a VF, a vGPU, a process). */
export const IN_USE = /In use by another client/i;
