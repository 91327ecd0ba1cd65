/**
 * Write a ConfigFile back as YAML (for `vmgpu export` and `vmgpu import`).
 *
 * The output is in NVIDIA vgpu-device-manager's documented style (2-space
 * indent, `- devices: ...` items, quoted type names) and uses only NVIDIA's
 * keys unless an entry needs a vmgpu extension, so a config without
 * extensions stays readable by nvidia-vgpu-dm. Profile names are written bare
 * (`L40S-12Q`). parseConfig(serializeConfig(f)) gives back f (apart from
 * positions, and `original` which becomes the bare profile).
 */
import type { ConfigEntry, ConfigFile } from './config.js';
import type { DraPolicySpec } from './dra-policy.js';
import { formatDeviceFilter } from './grammar.js';

/** Words YAML 1.1 or 1.2 would read as booleans or null; quoted when used as plain text. */
const RESERVED = /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~)$/;
const PLAIN_SAFE = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** A string as YAML: plain when unambiguous, else double-quoted (JSON escaping is valid YAML). */
function str(s: string): string {
  return PLAIN_SAFE.test(s) && !RESERVED.test(s) ? s : JSON.stringify(s);
}

function q(s: string): string {
  return JSON.stringify(s);
}

function paramValue(v: string): string {
  return /^(0|[1-9][0-9]{0,14})$/.test(v) ? v : q(v);
}

function flowList(items: readonly string[]): string {
  return `[${items.join(', ')}]`;
}

function entryLines(e: ConfigEntry): string[] {
  const fields: string[][] = [];
  if (e.deviceFilter !== null && e.deviceFilter.length > 0) {
    const f = e.deviceFilter.map((d) => q(formatDeviceFilter(d)));
    fields.push([`device-filter: ${f.length === 1 ? f[0] : flowList(f)}`]);
  }
  fields.push([`devices: ${e.devices === 'all' ? 'all' : flowList(e.devices.map(String))}`]);
  if (e.pciAddresses !== null) fields.push([`pci-addresses: ${flowList(e.pciAddresses.map(q))}`]);
  if (e.mode !== 'vgpu') fields.push([`mode: ${e.mode}`]);
  if (e.mode === 'vgpu' || e.vgpuDevices.length > 0) {
    if (e.vgpuDevices.length === 0) fields.push(['vgpu-devices: {}']);
    else fields.push(['vgpu-devices:', ...e.vgpuDevices.map((d) => `  ${q(d.profile)}: ${d.count}`)]);
  }
  const placed = Object.entries(e.vfPlacement);
  if (placed.length > 0) {
    fields.push(['vf-placement:', ...placed.map(([p, vfs]) => `  ${q(p)}: ${flowList(vfs.map(String))}`)]);
  }
  const params = Object.entries(e.vgpuParams);
  if (params.length > 0) {
    fields.push([
      'vgpu-params:',
      ...params.map(([p, kv]) => {
        const pairs = Object.entries(kv).map(([k, v]) => `${str(k)}: ${paramValue(v)}`);
        return `  ${q(p)}: {${pairs.join(', ')}}`;
      }),
    ]);
  }
  const names = Object.entries(e.resourceNames);
  if (names.length > 0) fields.push(['resource-names:', ...names.map(([p, n]) => `  ${q(p)}: ${q(n)}`)]);
  if (e.passthroughResourceName !== null) fields.push([`resource-name: ${q(e.passthroughResourceName)}`]);
  if (e.mixedSizes !== null) fields.push([`mixed-sizes: ${String(e.mixedSizes)}`]);

  const out: string[] = [];
  fields.forEach((lines, i) => {
    lines.forEach((line, j) => out.push(`${i === 0 && j === 0 ? '- ' : '  '}${line}`));
  });
  return out;
}

/** The `dra:` section, when the file has one. */
function draLines(d: DraPolicySpec | null): string[] {
  if (!d) return [];
  const out = ['dra:'];
  if (d.profiles !== null) out.push(`  profiles: ${flowList(d.profiles.map(q))}`);
  if (d.maxInstances !== null) out.push(`  max-instances: ${d.maxInstances}`);
  if (d.passthrough !== null) out.push(`  passthrough: ${String(d.passthrough)}`);
  if (d.allocation !== null) out.push(`  allocation: ${d.allocation}`);
  return out.length > 1 ? out : ['dra: {}'];
}

export interface SerializeOptions {
  /** Comment lines (without `#`) written at the top of the file. */
  header?: string[];
}

/** The config file as YAML text, ending with a newline. */
export function serializeConfig(file: ConfigFile, options: SerializeOptions = {}): string {
  const lines: string[] = [];
  for (const h of options.header ?? []) {
    for (const part of h.split('\n')) lines.push(part.length > 0 ? `# ${part}` : '#');
  }
  lines.push('version: v1');
  if (file.configs.length > 0) {
    lines.push('vgpu-configs:');
    file.configs.forEach((c, i) => {
      if (i > 0) lines.push('');
      lines.push(`  ${str(c.name)}:`);
      if (c.entries.length === 0) {
        lines[lines.length - 1] += ' []';
        return;
      }
      for (const e of c.entries) for (const l of entryLines(e)) lines.push(`    ${l}`);
    });
  }
  lines.push(...draLines(file.dra ?? null));
  return `${lines.join('\n')}\n`;
}
