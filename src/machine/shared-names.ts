/**
 * vGPU type names learned on other nodes (the agents' cluster catalog), as the
 * last name source: after the node's own (a free VF's creatable list, the
 * catalog cache, the host driver's nvidia-smi). Used only for a VF whose type
 * ID no own source names, and only when the name is one this card can have:
 * it parses as a profile, is a profile of the card's board, and is not the
 * name the node's own catalog gives another ID. Anything else leaves the type
 * unknown, and an unknown type's GPU is never changed (fail closed).
 */
import type { Gpu, Inventory, VgpuType } from '../inventory/types.js';
import { toVgpuType } from '../inventory/catalog.js';
import { boardForDevice, boardProfile } from '../model/boards.js';
import { cleanTypeName, parseProfile } from '../model/profile.js';
import type { Machine } from './machine.js';

/** Names known elsewhere for one card model and driver version: type ID -> name, with conflicting IDs already left out. */
export interface SharedNames {
  names(deviceId: string, driverVersion: string): ReadonlyMap<number, string>;
}

/** Sources the node itself has: a name from one of these is first-hand. */
export const OWN_SOURCES: ReadonlySet<VgpuType['source']> = new Set(['creatable', 'cache', 'nvidia-smi', 'mdev']);

/** The machine with `shared` as its last name source; everything else passes through. */
export function withSharedNames(machine: Machine, shared: SharedNames): Machine {
  return {
    ...machine,
    async inventory(req) {
      const inv = await machine.inventory(req);
      nameFromShared(inv, shared);
      return inv;
    },
  };
}

/** Name the VFs no own source names from `shared`, where the name fits the card. */
function nameFromShared(inv: Inventory, shared: SharedNames): void {
  const version = inv.node.nvidiaDriverVersion;
  if (!version) return;
  for (const g of inv.gpus) {
    const unnamed = g.vfs.filter((v) => v.currentTypeId !== 0 && v.currentProfile === null);
    if (unnamed.length === 0) continue;
    const names = shared.names(g.pci.deviceId, version);
    for (const v of unnamed) {
      const name = names.get(v.currentTypeId);
      if (name === undefined || sharedNameProblem(g, v.currentTypeId, name) !== null) continue;
      const type = toVgpuType({ id: v.currentTypeId, name }, 'cluster');
      if (!g.catalog.some((t) => t.id === type.id)) g.catalog.push(type);
      v.currentProfile = type.profile;
    }
    g.catalog.sort((a, b) => a.id - b.id);
    if (!g.vfs.some((v) => v.currentTypeId !== 0 && v.currentProfile === null)) g.warnings = g.warnings.filter((w) => w.code !== 'unknown-type-id');
  }
}

/** Why `name` cannot be type `id` of this GPU, or null when it can. */
export function sharedNameProblem(g: Gpu, id: number, name: string): string | null {
  if (cleanTypeName(name) !== name || parseProfile(name) === undefined) return `${JSON.stringify(name)} is not a vGPU type name`;
  const board = boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId);
  if (!board) return `vmgpu has no profile table for device ${g.pci.deviceId}, so it cannot check a name learned elsewhere`;
  if (!boardProfile(board, name)) return `${name} is not a profile of the ${board.model}`;
  const own = g.catalog.find((t) => t.name === name && OWN_SOURCES.has(t.source));
  if (own && own.id !== id) return `this node names type ID ${own.id} ${name} itself`;
  return null;
}
