/**
 * The simulator: an in-memory GPU node with the NVIDIA driver's behaviour,
 * behind the same sysfs port as a real host. Used by every end-to-end test and
 * by `vmgpu sim`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SimulatedNode, restoreNode, type SimNodeSpec, type SimState } from './node.js';
import { SimHostTools } from './tools.js';
import { SIM_STATE_FILE, materialize } from './materialize.js';

export { SimulatedNode, snapshotNode, restoreNode, parseHeldDevice } from './node.js';
export type { SimNodeSpec, SimGpuSpec, SimMode, SimState, WriteRecord } from './node.js';
export { simModels, simModel, SIM_DRIVERS } from './hardware.js';
export { SimHostTools } from './tools.js';
export { materialize, SIM_STATE_FILE } from './materialize.js';

export interface Simulation {
  node: SimulatedNode;
  tools: SimHostTools;
}

export function createSimulatedNode(spec: SimNodeSpec): SimulatedNode {
  return new SimulatedNode(spec);
}

export function simulation(node: SimulatedNode): Simulation {
  return { node, tools: new SimHostTools(node) };
}

/** Load a simulated node persisted by `vmgpu sim create` (DIR/vmgpu-sim.json). */
export function loadSimulation(dir: string): SimulatedNode {
  const file = path.join(dir, SIM_STATE_FILE);
  let state: SimState;
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8')) as SimState;
  } catch (err) {
    throw new Error(`cannot load the simulated node from ${file}: ${(err as Error).message}. Create one with \`vmgpu sim create --out ${dir}\`.`, { cause: err });
  }
  return restoreNode(state);
}

/** Persist a simulated node back to DIR (state file and materialised tree). */
export function saveSimulation(node: SimulatedNode, dir: string): void {
  materialize(node, dir);
}
