/**
 * The parsed config file: plain data the planner, the CLI and the device
 * plugins read. The file format is described in docs/config.md; parseConfig()
 * in load.ts turns text into these types, serializeConfig() in serialize.ts
 * turns them back into text.
 */
import { cutLines, cutQuoted } from '../io/cut.js';
import type { DraPolicySpec } from './dra-policy.js';
import type { DeviceFilter } from './grammar.js';

export type { DeviceFilter } from './grammar.js';

/** What an entry does with the GPUs it selects. */
export type GpuMode =
  /** vGPU: SR-IOV VFs with a type (Ada and newer) or mdev devices (Pascal to Ampere). The default. */
  | 'vgpu'
  /** Whole-GPU passthrough: the GPU (and its IOMMU group) bound to vfio-pci or a vendor VFIO variant. */
  | 'passthrough'
  /** Leave to the host driver (containers, or unused): no vGPUs, no VFIO binding. */
  | 'host'
  /** Managed by the DRA driver: vGPUs and passthrough created per ResourceClaim (docs/dra.md); the static planner leaves the GPU alone. */
  | 'dra';

export const GPU_MODES: readonly GpuMode[] = ['vgpu', 'passthrough', 'host', 'dra'];

/** One requested vGPU type and how many of it. */
export interface VgpuDeviceRequest {
  /** Bare profile name, e.g. `L40S-12Q` (a `NVIDIA ` / `GRID ` prefix removed). */
  profile: string;
  /** As written in the file, e.g. `NVIDIA L40S-12Q`; use it in messages. */
  original: string;
  /** At least 1. */
  count: number;
}

/** One item of a config: which GPUs, and what to make of them. */
export interface ConfigEntry {
  /** `device-filter`: a GPU matches when any filter matches; null = every NVIDIA GPU. */
  deviceFilter: DeviceFilter[] | null;
  /** `devices`: GPU indices (position among NVIDIA GPUs sorted by PCI address) or all. */
  devices: 'all' | number[];
  /** `pci-addresses` (vmgpu): GPUs by canonical PCI address (`0000:3b:00.0`); null = no address restriction. */
  pciAddresses: string[] | null;
  /** `mode` (vmgpu); `vgpu` when absent. */
  mode: GpuMode;
  /** `vgpu-devices`, in file order. Empty for `passthrough` / `host`, and for a vGPU GPU that should carry none. */
  vgpuDevices: VgpuDeviceRequest[];
  /** `vf-placement` (vmgpu): profile -> VF indices (`virtfnN` on the PF), one per requested instance. */
  vfPlacement: Record<string, number[]>;
  /** `vgpu-params` (vmgpu): profile -> key -> value, written to each vGPU's `vgpu_params`. */
  vgpuParams: Record<string, Record<string, string>>;
  /** `resource-names` (vmgpu): profile -> Kubernetes extended resource name for the device plugin. */
  resourceNames: Record<string, string>;
  /** `resource-name` (vmgpu, passthrough mode only): the device plugin resource for the whole GPU. */
  passthroughResourceName: string | null;
  /** `mixed-sizes` (vmgpu): switch the GPU's heterogeneous (mixed-size) vGPU mode on/off; null = leave as is. */
  mixedSizes: boolean | null;
  /** Where the entry starts in the file (1-based), for messages. */
  line: number;
  column: number;
  /** Key path of the entry, e.g. `vgpu-configs.l40s-mixed[0]`. */
  path: string;
}

/** An entry with every optional field at its default (all GPUs, vGPU mode, nothing requested); override what you set. */
export function defaultEntry(fields: Partial<ConfigEntry> = {}): ConfigEntry {
  return {
    deviceFilter: null,
    devices: 'all',
    pciAddresses: null,
    mode: 'vgpu',
    vgpuDevices: [],
    vfPlacement: {},
    vgpuParams: {},
    resourceNames: {},
    passthroughResourceName: null,
    mixedSizes: null,
    line: 0,
    column: 0,
    path: '',
    ...fields,
  };
}

/** A named config: what `-c NAME` / the `nvidia.com/vgpu.config` label selects. */
export interface NamedConfig {
  name: string;
  entries: ConfigEntry[];
  line: number;
}

export interface ConfigFile {
  version: 'v1';
  /** As given to parseConfig / loadConfigFile; used in messages. */
  filename: string;
  /** In file order. */
  configs: NamedConfig[];
  /** The `dra:` section (what the DRA driver offers); absent or null: the default policy. */
  dra?: DraPolicySpec | null;
}

/** One thing wrong with a file, positioned. line/column are 1-based; 0 when the problem has no position (e.g. unreadable file). */
export interface ConfigProblem {
  /** Key path, e.g. `vgpu-configs.l40s-mixed[0].vgpu-devices`; empty for the whole document. */
  path: string;
  line: number;
  column: number;
  message: string;
}

/** Format one problem as `file:line:col: path: message`. */
function formatProblem(filename: string, p: ConfigProblem): string {
  const where = p.line > 0 ? `${filename}:${p.line}:${p.column}` : filename;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

/** A ConfigError's message lists at most this many problems and counts the rest. */
export const MAX_LISTED_PROBLEMS = 100;

/** Every problem found in a config file (or a cozystack profiles file), sorted by position. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: ConfigProblem[];
  constructor(
    readonly filename: string,
    problems: ConfigProblem[],
  ) {
    const sorted = [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
    // A hostile file can hold a megabyte key or a million problems: the message quotes
    // values cut and lists the first problems, counting the rest; `problems` keeps all.
    const shown = sorted.slice(0, MAX_LISTED_PROBLEMS).map((p) => cutLines(cutQuoted(formatProblem(filename, p)), 1));
    if (sorted.length > MAX_LISTED_PROBLEMS) shown.push(`${filename}: ... and ${sorted.length - MAX_LISTED_PROBLEMS} more problems (fix these and run again)`);
    super(shown.join('\n'));
    this.problems = sorted;
  }
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof ConfigError;
}
