/**
 * Small grammars used by the config file: vGPU profile names, PCI ID filters,
 * Kubernetes extended resource names, config names and vgpu_params.
 *
 * Each function either returns a normalised value or a human-readable reason
 * (a string the caller turns into a positioned problem); none of them throws.
 */

import { parseProfileName } from '../inventory/catalog.js';
import { stripVendorPrefix } from '../inventory/profiles.js';
import type { VgpuSeries } from '../inventory/types.js';

/** A parsed vGPU profile (type) name such as `L40S-12Q` or `A100-1-5CME`. */
export interface ProfileName {
  /** The bare profile, without `NVIDIA ` / `GRID `: `L40S-12Q`. */
  profile: string;
  /** Board part: `L40S`, `A100D`, `DC`. */
  board: string;
  /** GPU instance slices for MIG-backed types (`A100-2-10C` -> 2), else null. */
  gpuInstances: number | null;
  /** Framebuffer in GB as written in the name (`0` on M60-0Q means 512 MB). */
  framebufferGB: number;
  series: VgpuSeries;
  /** `ME` suffix (media extensions) on MIG-backed types. */
  mediaExtensions: boolean;
  migBacked: boolean;
}

// The grammar NVIDIA's vgpu-device-manager accepts (time-sliced and MIG-backed types).
const TIME_SLICED_RE = /^([A-Z0-9]+)-(0|[1-9][0-9]{0,3})([ABCQ])$/;
const MIG_BACKED_RE = /^([A-Z0-9]+)-([1-9])-(0|[1-9][0-9]{0,3})([ABCQ])(ME)?$/;

/**
 * Parse a bare profile name with NVIDIA vgpu-device-manager's own grammar
 * (`<BOARD>-<GB><series>` or `<BOARD>-<slices>-<GB><series>[ME]`, upper-case).
 * Returns null when it does not fit. vmgpu accepts a wider set (see parseProfileKey);
 * this one is used for hints and by tests.
 */
export function parseBareProfile(name: string): ProfileName | null {
  const ts = TIME_SLICED_RE.exec(name);
  if (ts) {
    return {
      profile: name,
      board: ts[1]!,
      gpuInstances: null,
      framebufferGB: Number(ts[2]),
      series: ts[3] as VgpuSeries,
      mediaExtensions: false,
      migBacked: false,
    };
  }
  const mig = MIG_BACKED_RE.exec(name);
  if (mig) {
    return {
      profile: name,
      board: mig[1]!,
      gpuInstances: Number(mig[2]),
      framebufferGB: Number(mig[3]),
      series: mig[4] as VgpuSeries,
      mediaExtensions: mig[5] === 'ME',
      migBacked: true,
    };
  }
  return null;
}

export const NUMERIC_PROFILE_MESSAGE =
  'profile IDs change between driver versions; use the name, e.g. L40S-12Q';

/**
 * Parse a profile name as written in a config: bare (`L40S-12Q`) or with the
 * driver's `NVIDIA ` / `GRID ` prefix. The grammar is the inventory's
 * (parseProfileName in src/inventory/catalog.ts), so every name the driver
 * prints can be written, including boards such as `RTX6000-Ada` or
 * `RTX Pro 6000 Blackwell DC`. A name that is an upper-case NVIDIA name
 * typed in lower case is refused with the correct spelling.
 */
export function parseProfileKey(written: string): ProfileName | { error: string } {
  if (/^\s*[0-9]+\s*$/.test(written)) {
    return { error: `"${written}" is a number: ${NUMERIC_PROFILE_MESSAGE}` };
  }
  const bare = stripVendorPrefix(written);
  const upper = parseBareProfile(bare.toUpperCase());
  if (upper && upper.profile !== bare) {
    return { error: `"${written}" is not a vGPU profile name: names are upper-case; did you mean "${upper.profile}"?` };
  }
  const parsed = parseProfileName(written);
  if (parsed) {
    return {
      profile: parsed.profile,
      board: parsed.board,
      gpuInstances: parsed.gpuInstanceSlices ?? null,
      framebufferGB: parsed.framebufferGB,
      series: parsed.series,
      mediaExtensions: parsed.mediaExtensions === true,
      migBacked: parsed.migBacked,
    };
  }
  return {
    error:
      `"${written}" is not a vGPU profile name: expected <board>-<GB><series> or, MIG-backed, ` +
      '<board>-<slices>-<GB>C[ME], e.g. L40S-12Q or A100-1-5C (an "NVIDIA " or "GRID " prefix is allowed)',
  };
}

/** A device filter: a PCI device/vendor pair, optionally with a subsystem pair. IDs are 4 lower-case hex digits. */
export interface DeviceFilter {
  deviceId: string;
  vendorId: string;
  subsystemDeviceId?: string;
  subsystemVendorId?: string;
}

const HEX_ID_RE = /^0[xX]([0-9a-fA-F]{1,8})$/;

function splitId(hex8: string): [string, string] {
  const padded = hex8.toLowerCase().padStart(8, '0');
  return [padded.slice(0, 4), padded.slice(4)];
}

const FILTER_HELP =
  'expected "0xDDDDVVVV" (device ID then vendor ID, e.g. "0x26B910DE" for an L40S), ' +
  'optionally followed by ":0xSSSSVVVV" (subsystem device ID then subsystem vendor ID)';

/** Parse a device-filter string: `0xDDDDVVVV` or `0xDDDDVVVV:0xSSSSVVVV`. */
export function parseDeviceFilter(text: string): DeviceFilter | { error: string } {
  const parts = text.split(':');
  if (parts.length > 2) return { error: `"${text}" is not a PCI ID filter: ${FILTER_HELP}` };
  const main = HEX_ID_RE.exec(parts[0]!);
  if (!main) return { error: `"${text}" is not a PCI ID filter: ${FILTER_HELP}` };
  const [deviceId, vendorId] = splitId(main[1]!);
  const out: DeviceFilter = { deviceId, vendorId };
  if (parts.length === 2) {
    const sub = HEX_ID_RE.exec(parts[1]!);
    if (!sub) return { error: `"${text}" has a malformed subsystem part "${parts[1]}": ${FILTER_HELP}` };
    const [sd, sv] = splitId(sub[1]!);
    out.subsystemDeviceId = sd;
    out.subsystemVendorId = sv;
  }
  return out;
}

/** Format a filter the way NVIDIA writes it: `0x26B910DE[:0x17F010DE]`. */
export function formatDeviceFilter(f: DeviceFilter): string {
  const main = `0x${(f.deviceId + f.vendorId).toUpperCase()}`;
  if (f.subsystemDeviceId !== undefined && f.subsystemVendorId !== undefined) {
    return `${main}:0x${(f.subsystemDeviceId + f.subsystemVendorId).toUpperCase()}`;
  }
  return main;
}

const DNS_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS_SUBDOMAIN_RE = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const QUALIFIED_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * Check a Kubernetes extended resource name (`example.com/name`): a DNS
 * subdomain prefix outside kubernetes.io, a `/`, and a qualified name of at
 * most 63 characters. Returns null when valid, else why not.
 */
export function checkExtendedResourceName(name: string): string | null {
  const help = 'expected <domain>/<name>, e.g. nvidia.com/L40S-12Q';
  const slash = name.indexOf('/');
  if (slash < 0) return `"${name}" has no domain prefix: ${help}`;
  const prefix = name.slice(0, slash);
  const local = name.slice(slash + 1);
  if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix)) {
    return `"${name}": the prefix "${prefix}" is not a lower-case DNS subdomain: ${help}`;
  }
  if (prefix === 'kubernetes.io' || prefix.endsWith('.kubernetes.io')) {
    return `"${name}": the kubernetes.io domain is reserved for Kubernetes; use your own domain, ${help}`;
  }
  if (prefix.startsWith('requests.')) {
    return `"${name}": a prefix starting with "requests." is not allowed for extended resources`;
  }
  if (local.length === 0 || local.length > 63 || !QUALIFIED_NAME_RE.test(local)) {
    return `"${name}": the name part "${local}" must be 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  }
  return null;
}

const LABEL_VALUE_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Config names are selected through the `nvidia.com/vgpu.config` node label, so they follow the label-value grammar. */
export function checkConfigName(name: string): string | null {
  if (LABEL_VALUE_RE.test(name)) return null;
  return (
    `"${name}" is not a valid config name: it is selected through the node label nvidia.com/vgpu.config, ` +
    'so use 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit'
  );
}

const PARAM_KEY_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const PARAM_VALUE_RE = /^[A-Za-z0-9_.:+-]{1,128}$/;

/** A vgpu_params key, e.g. `frame_rate_limiter`. */
export function checkParamKey(key: string): string | null {
  if (PARAM_KEY_RE.test(key)) return null;
  return `"${key}" is not a vgpu_params key: expected letters, digits and "_", e.g. frame_rate_limiter`;
}

/** A vgpu_params value: no spaces, commas, "=" or control characters (they would break the `key=value,...` line). */
export function checkParamValue(value: string): string | null {
  if (PARAM_VALUE_RE.test(value)) return null;
  return `"${value}" is not a vgpu_params value: use 1-128 letters, digits, ".", ":", "_", "+" or "-" (no spaces, commas or "=")`;
}
