/**
 * The Cozystack shell loader (seed 001: /work/shared/reference/seeds/001_*.txt,
 * "vgpu-profile-loader"), as it acts on a node: an operator reads the ID of the
 * profile they want from a free VF's creatable_vgpu_types, writes
 * `<bus-id>=<profile-id>` lines into a ConfigMap, and a privileged pod echoes
 * each ID into `/sys/bus/pci/devices/<bus-id>/nvidia/current_vgpu_type`,
 * skipping a VF that already has it. vmgpu never saw those VFs free: a card
 * the loader filled is full, with types only the driver's tools can name.
 */
import type { SimulatedNode } from '../../src/simulator/index.js';
import { checkPciAddress } from '../../src/model/pci.js';
import { parseCreatableVgpuTypes } from '../../src/inventory/catalog.js';

/** The ID of `typeName` (`NVIDIA L40S-24Q`) as a free VF lists it, the way the seed tells the operator to find it. */
function profileIdFromCreatable(sim: SimulatedNode, vf: string, typeName: string): number {
  const text = sim.port.readNvidiaAttr(checkPciAddress(vf), 'creatable_vgpu_types') ?? '';
  const e = parseCreatableVgpuTypes(text).find((x) => x.name === typeName);
  if (!e) throw new Error(`${vf} does not list ${typeName} as creatable (is the VF free?)`);
  return e.id;
}

/** Run the loader's loop once over `profiles` (`<bus-id>=<profile-id>` per line, `#` comments), as its shell script does. */
function runShellLoader(sim: SimulatedNode, profiles: string): string[] {
  const log: string[] = [];
  for (const raw of profiles.split('\n')) {
    const line = raw.replace(/\s*#.*$/, '').trim();
    if (!line) continue;
    const [bus, profile] = line.split('=');
    if (!bus || profile === undefined) {
      log.push(`skip malformed line: ${line}`);
      continue;
    }
    const vf = checkPciAddress(bus);
    const current = sim.port.readNvidiaAttr(vf, 'current_vgpu_type');
    if (current === undefined) {
      log.push(`skip ${bus} (no current_vgpu_type)`);
      continue;
    }
    if (current.trim() === profile) continue;
    sim.port.writeCurrentVgpuType(vf, Number(profile));
    log.push(`set ${bus} -> ${profile} (was ${current.trim()})`);
  }
  return log;
}

/** Seed 001's layout on an L40S: its first two VFs each given an L40S-24Q, which fills the card. */
export function loadSeed001(sim: SimulatedNode, pf: string): string[] {
  const g = sim.gpus.find((x) => x.pf.addr === pf);
  if (!g || g.vfs.length < 2) throw new Error(`${pf}: no L40S with VFs enabled`);
  const [vf0, vf1] = [g.vfs[0]!.fn.addr, g.vfs[1]!.fn.addr];
  const id = profileIdFromCreatable(sim, vf0, 'NVIDIA L40S-24Q');
  return runShellLoader(sim, `# <bus-id>=<profile-id>\n${vf0}=${id}\n${vf1}=${id}\n`);
}
