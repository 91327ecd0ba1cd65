/**
 * One validation of a machine, shared by `vmgpu validate` and the agent:
 * plan the configured layout, look at the device plugins, and run the
 * validator's checks (validator.ts, pure) over what was found.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PciIds } from '../../inventory/pciids.js';
import type { Inventory } from '../../inventory/types.js';
import type { Machine } from '../../machine/machine.js';
import { planOn } from '../../machine/plan-on.js';
import type { Plan } from '../../plan/types.js';
import type { ConfigFile } from '../../spec/config.js';
import { selectConfig } from '../../spec/load.js';
import { pluginSocketName } from '../deviceplugin/naming.js';
import { passthroughNamer } from '../deviceplugin/passthrough-name.js';
import { collectResources } from '../deviceplugin/resources.js';
import { messageOf } from '../errors.js';
import { resolveDesired, resourceNamesOf, type ResourceNames } from './desired.js';
import type { PluginView } from './plugins.js';
import type { Desired } from './state.js';
import { validateNode, type ValidationReport } from './validator.js';

/**
 * The config to check: a desired state (the agent's, or its record), a file
 * and a name in it (`-f`, `-c`), or the reason there is none.
 */
export type ValidationTarget = { desired: Desired } | { file: ConfigFile; name: string } | { unavailable: string };

export interface ValidationPlan {
  /** The plan to the configured layout, with no in-use filtering beyond the node's own; null when it cannot be made. */
  plan: Plan | null;
  /** Why there is no plan. */
  planUnavailable?: string;
  resourceNames: ResourceNames;
}

async function planForValidation(machine: Machine, target: ValidationTarget, nodeId: string): Promise<ValidationPlan> {
  if ('unavailable' in target) return { plan: null, planUnavailable: target.unavailable, resourceNames: {} };
  try {
    const { file, config } = 'desired' in target ? resolveDesired(target.desired) : { file: target.file, config: { name: target.name, entries: selectConfig(target.file, target.name), line: 0 } };
    const { inv, plan } = await planOn(machine, { file, name: config.name, nodeId });
    return { plan, resourceNames: resourceNamesOf(config, inv) };
  } catch (err) {
    return { plan: null, planUnavailable: `the config cannot be planned: ${messageOf(err)}`, resourceNames: {} };
  }
}

export interface ValidationSources {
  /** The device plugins serving the node's devices under the config's resource names; null when not known here. */
  plugins(inv: Inventory, resourceNames: ResourceNames): PluginView;
  /** The Node's status.allocatable; null without API access. */
  allocatable: Record<string, string> | null;
}

export async function validateMachine(machine: Machine, target: ValidationTarget, nodeId: string, sources: ValidationSources): Promise<ValidationReport> {
  const inv = await machine.inventory();
  const { plan, planUnavailable, resourceNames } = await planForValidation(machine, target, nodeId);
  return validateNode({ inventory: inv, plan, ...(planUnavailable ? { planUnavailable } : {}), plugins: sources.plugins(inv, resourceNames), allocatable: sources.allocatable });
}

/**
 * The plugins as seen from outside the agent: each resource the node's
 * devices make, registered when its socket is in `pluginDir`. Null when there
 * is no plugin directory (not a Kubernetes node).
 */
export function pluginsOnDisk(inv: Inventory, resourceNames: ResourceNames, pciIds: PciIds, pluginDir: string): PluginView {
  if (!fs.existsSync(pluginDir)) return null;
  const { resources } = collectResources(inv, { resourceNames, passthroughName: passthroughNamer(pciIds) });
  return resources.map((r) => ({ resourceName: r.resourceName, registered: fs.existsSync(path.join(pluginDir, pluginSocketName(r.resourceName))), devices: r.devices.length, healthy: r.devices.length }));
}
