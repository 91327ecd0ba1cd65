/**
 * Small grammars used by the config file: profile keys, PCI ID filters,
 * Kubernetes extended resource names, config names and vgpu_params.
 *
 * Each function either returns a normalised value or a human-readable reason
 * (a string the caller turns into a positioned problem); none of them throws.
 */

import { isNvidiaProfileShape, parseProfile, stripVendorPrefix, type Profile } from '../model/profile.js';

export const NUMERIC_PROFILE_MESSAGE =
  'profile IDs change between driver versions; use the name, e.g. L40S-12Q';

/**
 * Parse a profile name as written in a config: bare (`L40S-12Q`) or with the
 * driver's `NVIDIA ` / `GRID ` prefix, in the one profile grammar
 * (src/model/profile.ts), so every name the driver prints can be written. A
 * name NVIDIA writes in upper case, typed in lower case, is refused with the
 * correct spelling.
 */
export function parseProfileKey(written: string): Profile | { error: string } {
  if (/^\s*[0-9]+\s*$/.test(written)) {
    return { error: `"${written}" is a number: ${NUMERIC_PROFILE_MESSAGE}` };
  }
  const bare = stripVendorPrefix(written);
  if (!isNvidiaProfileShape(bare) && isNvidiaProfileShape(bare.toUpperCase())) {
    return { error: `"${written}" is not a vGPU profile name: names are upper-case; did you mean "${bare.toUpperCase()}"?` };
  }
  const parsed = parseProfile(written);
  if (parsed) return parsed;
  return {
    error:
      `"${written}" is not a vGPU profile name: expected <board>-<GB><series> or, MIG-backed, ` +
      '<board>-<slices>-<GB><series>[ME|NOME|MEALL|GFX], e.g. L40S-12Q, A100-1-5C or DC-1-24CGFX (an "NVIDIA " or "GRID " prefix is allowed)',
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
