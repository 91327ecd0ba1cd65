/**
 * NVIDIA vgpu-device-manager's own example config (v0.5.0, the GPU Operator's
 * `default` included), rebuilt from vmgpu's table of its facts
 * (test/fixtures/nvidia/vgpu-dm-v0.5.0-example.txt) in NVIDIA's layout:
 * four-space indent, quoted device filters, `devices: all` everywhere.
 */
import { readFileSync } from 'node:fs';

export interface NvidiaExample {
  /** Every config but `default`: its one profile and count, in file order. */
  configs: { profile: string; count: number }[];
  /** `default`: one entry per device filter, in file order (some filters twice). */
  default: { filter: string; profile: string; count: number }[];
}

export function nvidiaExample(): NvidiaExample {
  const text = readFileSync(new URL('../../fixtures/nvidia/vgpu-dm-v0.5.0-example.txt', import.meta.url), 'utf8');
  const out: NvidiaExample = { configs: [], default: [] };
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'config') out.configs.push({ profile: f[1]!, count: Number(f[2]) });
    else if (f[0] === 'default') out.default.push({ filter: f[1]!, profile: f[2]!, count: Number(f[3]) });
  }
  return out;
}

/** The example as NVIDIA writes it. */
export function nvidiaExampleYaml(ex: NvidiaExample = nvidiaExample()): string {
  const out = ['version: v1', 'vgpu-configs:'];
  for (const c of ex.configs) out.push(`    ${c.profile}:`, '        - devices: all', '          vgpu-devices:', `            ${c.profile}: ${c.count}`);
  out.push('    default:');
  for (const e of ex.default) out.push(`        - device-filter: "${e.filter}"`, '          devices: all', '          vgpu-devices:', `            ${e.profile}: ${e.count}`);
  return `${out.join('\n')}\n`;
}
