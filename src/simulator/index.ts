/**
 * The simulator: an in-memory GPU node with the NVIDIA driver's behaviour,
 * behind the same sysfs port as a real host. Used by every end-to-end test and
 * by `vmgpu sim`.
 */
import { SimulatedNode } from './node.js';
import type { SimNodeSpec } from './state.js';
import { SimHostTools } from './tools.js';

export { SimulatedNode, snapshotNode, restoreNode } from './node.js';
export { parseHeldDevice } from './kernel.js';
export type { SimNodeSpec, SimGpuSpec, SimMode, WriteRecord } from './state.js';
export type { SimState } from './snapshot.js';
export { simModels, simModel, SIM_DRIVERS } from './hardware.js';
export { SimHostTools } from './tools.js';
export type { MaterializeResult } from './materialize.js';
export {
  loadSimulation,
  saveSimulation,
  materialize,
  markSimTreeEdited,
  simTreeProblem,
  SIM_STATE_FILE,
  SIM_SAVING_MARKER,
  SIM_EDITED_MARKER,
  type SaveResult,
} from './persist.js';

export interface Simulation {
  node: SimulatedNode;
  tools: SimHostTools;
}

export function createSimulatedNode(spec: SimNodeSpec): SimulatedNode {
  return new SimulatedNode(spec);
}

