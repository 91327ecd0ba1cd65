/**
 * A simulated node's directory read as a plain tree (`--sysfs-root DIR`):
 * the simulator may be saving it at the same moment, so a reader checks that
 * the tree is not half saved, before and after it reads, and a writer marks
 * it edited (the next `--simulate` save then rewrites it from its state).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InventoryError } from '../inventory/read.js';
import { markSimTreeEdited, simTreeProblem, SIM_STATE_FILE } from '../simulator/index.js';
import type { Machine } from './machine.js';

/** A simulator's directory, and its state file as it was when first seen. */
export interface SimulatorTree {
  dir: string;
  state: string;
}

function stateStamp(dir: string): string {
  const st = fs.statSync(path.join(dir, SIM_STATE_FILE), { throwIfNoEntry: false });
  return st ? `${st.ino}/${st.mtimeMs}/${st.size}` : 'none';
}

/** The simulator directory holding a tree, or null when the tree is not a simulator's. Throws when it is half saved. */
export function simulatorTreeAt(dir: string): SimulatorTree | null {
  if (!fs.existsSync(path.join(dir, SIM_STATE_FILE))) return null;
  const tree = { dir, state: stateStamp(dir) };
  checkSimulatorTree(tree);
  return tree;
}

/** Refuse a simulator tree that is half saved, or was saved while it was read. */
function checkSimulatorTree(t: SimulatorTree): void {
  const problem = simTreeProblem(t.dir) ?? (stateStamp(t.dir) !== t.state ? `the simulated node in ${t.dir} was saved while it was being read; read it again` : null);
  if (problem) throw new InventoryError(problem);
}

/** Mark the tree edited before the first write through it. */
export function beforeWritingSimulatorTree(t: SimulatorTree): () => void {
  return () => markSimTreeEdited(t.dir);
}

/** A machine over a simulator's tree whose every inventory is checked against a concurrent save. */
export function guardedBySimulatorTree(machine: Machine, t: SimulatorTree): Machine {
  return {
    ...machine,
    async inventory(req) {
      const inv = await machine.inventory(req);
      checkSimulatorTree(t);
      return inv;
    },
  };
}
