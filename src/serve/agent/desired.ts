/**
 * From the Node's labels and the config file to what the node should look
 * like: the named config (`nvidia.com/vgpu.config`, or the default), or the
 * whole-node layout implied by `nvidia.com/gpu.workload.config`.
 */
import type { Inventory } from '../../inventory/types.js';
import { defaultEntry, type ConfigEntry, type ConfigFile, type NamedConfig } from '../../spec/config.js';
import { parseConfig, selectConfig } from '../../spec/load.js';
import { gpuIdentity, selectGpus } from '../../spec/match.js';
import { WORKLOAD_MODES, type Desired, type WorkloadMode } from './state.js';

export const LABEL_CONFIG = 'nvidia.com/vgpu.config';
export const LABEL_STATE = 'nvidia.com/vgpu.config.state';
export const LABEL_WORKLOAD = 'nvidia.com/gpu.workload.config';
/** `dra`: every GPU of the node to the DRA driver, no vGPU config needed (docs/dra.md); `static` or absent: the config decides. */
export const LABEL_MODE = 'vmgpu.io/mode';
export const ANNOTATION_STATUS = 'vmgpu.io/status';
export const ANNOTATION_PERMITTED = 'vmgpu.io/permitted-host-devices';
export const LABEL_VALIDATION = 'vmgpu.io/validation';
export const ANNOTATION_VALIDATION = 'vmgpu.io/validation';

/** Resource-name overrides for the device plugins: profile, type name or `vendor:device` -> resource name. */
export type ResourceNames = Record<string, string>;

export type DesiredResult = { ok: true; desired: Desired } | { ok: false; reason: string; idle?: boolean };

/**
 * What the labels ask for. `configText` is the current config file (null
 * when no file is available). Returns a reason instead when nothing can be
 * chosen.
 */
export function desiredFromLabels(labels: Record<string, string>, config: { text: string; fileName: string } | null, defaultConfig: string | undefined, configProblem?: string | null): DesiredResult {
  const mode = labels[LABEL_MODE];
  if (mode === 'dra') return { ok: true, desired: { workload: 'vm-dra', configName: null, configText: config?.text ?? '', fileName: config?.fileName ?? `(${LABEL_MODE}=dra)` } };
  if (mode !== undefined && mode !== '' && mode !== 'static') return { ok: false, reason: `label ${LABEL_MODE}=${JSON.stringify(mode)} is neither dra nor static; fix the label` };
  const raw = labels[LABEL_WORKLOAD];
  let workload: WorkloadMode = 'vm-vgpu';
  if (raw !== undefined && raw !== '') {
    if (!WORKLOAD_MODES.includes(raw as WorkloadMode)) {
      return { ok: false, reason: `label ${LABEL_WORKLOAD}=${JSON.stringify(raw)} is not one of ${WORKLOAD_MODES.join(', ')}; fix the label` };
    }
    workload = raw as WorkloadMode;
  }
  if (workload !== 'vm-vgpu') return { ok: true, desired: { workload, configName: null, configText: '', fileName: `(${LABEL_WORKLOAD}=${workload})` } };
  const name = labels[LABEL_CONFIG] || defaultConfig;
  if (!name) return { ok: false, idle: true, reason: `no ${LABEL_CONFIG} label on the node and no --default-config; label the node to choose a config` };
  if (!config) return { ok: false, reason: `config ${JSON.stringify(name)} is wanted but ${configProblem ?? 'no config file is available (check --config-file / --config-map)'}` };
  return { ok: true, desired: { workload, configName: name, configText: config.text, fileName: config.fileName } };
}

const baseEntry = (mode: ConfigEntry['mode']): ConfigEntry => defaultEntry({ mode });

/** The parsed file and the selected config. Throws ConfigError for a bad file or an unknown name. */
export function resolveDesired(d: Desired): { file: ConfigFile; config: NamedConfig } {
  if (d.workload === 'vm-dra') {
    // Every GPU to the DRA driver; the file, when there is one, only gives the dra: policy.
    const file = d.configText.trim() ? parseConfig(d.configText, d.fileName) : { version: 'v1' as const, filename: d.fileName, configs: [] };
    const config: NamedConfig = { name: 'workload-vm-dra', entries: [baseEntry('dra')], line: 0 };
    return { file: { ...file, configs: [config] }, config };
  }
  if (d.workload !== 'vm-vgpu') {
    const name = `workload-${d.workload}`;
    const config: NamedConfig = { name, entries: [baseEntry(d.workload === 'container' ? 'host' : 'passthrough')], line: 0 };
    return { file: { version: 'v1', filename: d.fileName, configs: [config] }, config };
  }
  const file = parseConfig(d.configText, d.fileName);
  const name = d.configName ?? '';
  const entries = selectConfig(file, name);
  return { file, config: { name, entries, line: file.configs.find((c) => c.name === name)?.line ?? 0 } };
}

/**
 * Resource-name overrides for the device plugins from the selected entries:
 * `resource-names` (profile -> name) and, for passthrough entries,
 * `resource-name` keyed by the `vendor:device` ID of each GPU the entry selects.
 */
export function resourceNamesOf(config: NamedConfig, inv: Inventory): ResourceNames {
  const out: ResourceNames = {};
  const ids = inv.gpus.map((g) => ({ ...gpuIdentity(g), gpu: g }));
  for (const e of config.entries) {
    for (const [profile, name] of Object.entries(e.resourceNames)) out[profile] = name;
    if (e.mode === 'passthrough' && e.passthroughResourceName) {
      for (const g of selectGpus(e, ids)) out[`${g.gpu.pci.vendorId.replace(/^0x/, '')}:${g.gpu.pci.deviceId.replace(/^0x/, '')}`.toLowerCase()] = e.passthroughResourceName;
    }
  }
  return out;
}
