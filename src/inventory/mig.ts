/**
 * The MIG part of an inventory: MIG mode and GPU instances of every GPU whose
 * board has MIG-backed profiles (from NVIDIA's tools: sysfs does not show
 * them), and the instance each MIG-backed vGPU sits on (from sysfs). What
 * cannot be read stays null: the planner leaves such a GPU as it is.
 */
import { boardForDevice } from '../model/boards.js';
import { checkPciAddress } from '../model/pci.js';
import { parseMdevUuid } from '../sysfs/names.js';
import type { HostTools } from '../sysfs/host-tools.js';
import type { SysfsPort } from '../sysfs/port.js';
import type { Gpu, MigState } from './types.js';

/** A `gpu_instance_id` file's text as an instance ID; null for none (`-1`, ENXIO, absent) or anything else. */
function parseGpuInstanceId(text: string | undefined): number | null {
  const v = text?.trim();
  return v !== undefined && /^[0-9]{1,4}$/.test(v) ? Number(v) : null;
}

/** Read a `gpu_instance_id` through `read`; the driver answers ENXIO where no MIG-backed vGPU is, which is no instance. */
export function readGpuInstanceId(read: () => string | undefined): number | null {
  try {
    return parseGpuInstanceId(read());
  } catch {
    return null;
  }
}

/** The instance the vGPU of each configured mdev sits on. */
export function readMdevGpuInstances(port: SysfsPort, g: Gpu): void {
  for (const parent of g.mdevParents) {
    for (const i of parent.instances) i.gpuInstanceId = readGpuInstanceId(() => port.readMdevGpuInstanceId(parseMdevUuid(i.uuid)));
  }
}

/** MIG mode and instances of a MIG-capable GPU through the host tools; null when they cannot tell. */
export async function readMigState(g: Gpu, tools: HostTools): Promise<MigState | null> {
  if (!boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId)?.mig) return null;
  const pf = checkPciAddress(g.pci.address);
  try {
    const mode = await tools.migMode(pf);
    if (!mode) return null;
    const instances = mode.current ? await tools.gpuInstances(pf) : [];
    if (!instances) return null;
    return { current: mode.current, pending: mode.pending, instances: instances.map((i) => ({ id: i.id, profile: i.profile, profileId: i.profileId, start: i.start, size: i.size })) };
  } catch {
    return null;
  }
}
