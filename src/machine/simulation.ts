/**
 * Simulated nodes as a product feature (`vmgpu sim ...`): create one in a
 * directory, list what the simulator knows, hold and release its devices as a
 * VM would. The machine room is the one door to the simulator (lint enforces
 * it), so the command line comes through here.
 */
import { createSimulatedNode, loadSimulation, materialize, parseHeldDevice, saveSimulation, simModels, SIM_DRIVERS, type SimNodeSpec } from '../simulator/index.js';

export type { SimMode, SimNodeSpec, SimGpuSpec } from '../simulator/index.js';

export interface CreatedNode {
  gpus: number;
  files: number;
  links: number;
  driverVersion: string;
}

/** Create a simulated node and write it to `dir` (usable with --simulate and --sysfs-root). Throws on a spec the simulator refuses. */
export function createSimulatedNodeDir(spec: SimNodeSpec, dir: string): CreatedNode {
  const node = createSimulatedNode(spec);
  const res = materialize(node, dir);
  return { gpus: node.gpus.length, files: res.files, links: res.links, driverVersion: node.driver.version };
}

/**
 * Mark a device of the node in `dir` as held by a (simulated) VM, or release
 * it. The name is checked before anything is read. Returns the canonical name.
 */
export function setHeld(dir: string, device: string, held: boolean): string {
  const key = parseHeldDevice(device);
  const node = loadSimulation(dir);
  if (held) node.hold(key);
  else node.release(key);
  saveSimulation(node, dir);
  return key;
}

export function simulatorModels(): { key: string; deviceId: string; framework: string; totalVfs: number }[] {
  return simModels().map((m) => ({ key: m.key, deviceId: m.deviceId, framework: m.framework, totalVfs: m.totalVfs }));
}

export function simulatorDrivers(): { version: string; rejectsTrailingNewline: boolean }[] {
  return SIM_DRIVERS.map((d) => ({ version: d.version, rejectsTrailingNewline: d.rejectsTrailingNewline }));
}
