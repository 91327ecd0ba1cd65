/**
 * Planning on a machine: read its inventory, gather the in-use set, choose
 * each GPU's VFIO driver, and call the pure planner. Shared by the CLI
 * (plan/apply/assert/validate) and the agent.
 */
import type { Inventory } from '../inventory/types.js';
import { plan as makePlan } from '../plan/plan.js';
import type { InUse, Plan } from '../plan/types.js';
import type { ConfigFile } from '../spec/config.js';
import { selectConfig } from '../spec/load.js';
import { mergeInUse } from './in-use.js';
import type { Machine } from './machine.js';

export interface PlanRequest {
  file: ConfigFile;
  /** The config's name in the file; a name the file lacks throws ConfigError. */
  name: string;
  /** Node identity: part of every mdev UUID vmgpu creates. */
  nodeId: string;
  /** In-use devices from a source the machine does not see itself (the kubelet's pod-resources). */
  extraInUse?: InUse;
}

export async function planOn(machine: Machine, req: PlanRequest): Promise<{ inv: Inventory; plan: Plan }> {
  const entries = selectConfig(req.file, req.name);
  const inv = await machine.inventory();
  const inUse = mergeInUse(machine.inUse(inv), req.extraInUse ?? new Map());
  const plan = makePlan(inv, req.file, { name: req.name, entries, line: 0 }, { nodeId: req.nodeId, inUse, vfioDriverFor: machine.vfioDriverFor(inv) });
  const blind = machine.inUseBlindSpot();
  return { inv, plan: blind ? changeNothing(plan, blind) : plan };
}

/** Fail closed: when vmgpu cannot tell which devices VMs hold, no GPU changes. */
function changeNothing(plan: Plan, why: string): Plan {
  const touched = [...new Set([...plan.actions.map((a) => a.gpu), ...plan.blocked.map((b) => b.gpu)])];
  const undetermined = touched.map((gpu) => ({
    gpu,
    device: gpu,
    reason: `${gpu} is left as it is: ${why}`,
    fix: 'run vmgpu in the host PID namespace (the Helm chart sets hostPID: true; on a host, run it outside containers)',
  }));
  return { ...plan, actions: [], blocked: [], undetermined: [...plan.undetermined, ...undetermined] };
}
