/**
 * What NVIDIA vgpu-device-manager's `api/spec/v1` reads, and nothing more: a
 * file that passes this check uses only NVIDIA's keys and value shapes, so
 * `nvidia-vgpu-dm` can read it. Written from the facts of NVIDIA's format
 * (the shapes its example file uses, test/fixtures/nvidia/, and CONTRACTS.md):
 * top level `version: v1` and `vgpu-configs`; each config a list of entries
 * with `device-filter` (optional: a `0xDDDDVVVV` string or a list of them),
 * `devices` (`all` or a list of GPU indices) and `vgpu-devices` (type name ->
 * count). vmgpu's extension keys, its subsystem-ID filters and its
 * `NVIDIA `-prefixed names are all outside it.
 */
import { parse } from 'yaml';
import { isNvidiaProfileShape } from '../../../src/model/profile.js';

const FILTER = /^0x[0-9A-Fa-f]{8}$/;
const ENTRY_KEYS = new Set(['device-filter', 'devices', 'vgpu-devices']);

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function entryProblems(e: unknown, where: string): string[] {
  if (!isMap(e)) return [`${where}: not a mapping`];
  const out = Object.keys(e).filter((k) => !ENTRY_KEYS.has(k)).map((k) => `${where}: "${k}" is not an NVIDIA key`);
  const f = e['device-filter'];
  if (f !== undefined && !(typeof f === 'string' && FILTER.test(f)) && !(Array.isArray(f) && f.every((x) => typeof x === 'string' && FILTER.test(x)))) {
    out.push(`${where}.device-filter: ${JSON.stringify(f)} is not NVIDIA's 0xDDDDVVVV form`);
  }
  const d = e.devices;
  if (d !== 'all' && !(Array.isArray(d) && d.every((i) => Number.isInteger(i) && (i as number) >= 0))) out.push(`${where}.devices: ${JSON.stringify(d)} is neither all nor a list of GPU indices`);
  const v = e['vgpu-devices'];
  if (!isMap(v)) out.push(`${where}.vgpu-devices: missing or not a mapping`);
  else {
    for (const [name, count] of Object.entries(v)) {
      if (!isNvidiaProfileShape(name)) out.push(`${where}.vgpu-devices: "${name}" is not an NVIDIA profile name`);
      if (!Number.isInteger(count) || (count as number) < 1) out.push(`${where}.vgpu-devices.${name}: count ${JSON.stringify(count)}`);
    }
  }
  return out;
}

/** Every way `text` is not a plain NVIDIA vgpu-device-manager file; [] when it is one. */
export function nvidiaOnlyProblems(text: string): string[] {
  const doc: unknown = parse(text);
  if (!isMap(doc)) return ['the file is not a mapping'];
  const out = Object.keys(doc).filter((k) => k !== 'version' && k !== 'vgpu-configs').map((k) => `"${k}" is not an NVIDIA top-level key`);
  if (doc.version !== 'v1') out.push(`version is ${JSON.stringify(doc.version)}, not v1`);
  const configs = doc['vgpu-configs'];
  if (!isMap(configs)) return [...out, 'vgpu-configs: missing or not a mapping'];
  for (const [name, entries] of Object.entries(configs)) {
    if (!Array.isArray(entries) || entries.length === 0) out.push(`${name}: not a list of entries`);
    else entries.forEach((e, i) => out.push(...entryProblems(e, `${name}[${i}]`)));
  }
  return out;
}
