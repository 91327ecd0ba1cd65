/**
 * CDI specs for prepared claims: one file per claim in the runtime's CDI
 * directory (`gpu.vmgpu.io-vgpu_<claim UID>.json`), kind `gpu.vmgpu.io/vgpu`,
 * holding
 * - per device, the device nodes a VM needs for it: `/dev/vfio/vfio`, its
 *   IOMMU group node, its `vfio-dev` cdev, `/dev/iommu` with iommufd (what
 *   the device plugin's Allocate returns, src/serve/deviceplugin/allocate.ts);
 * - per request, the environment KubeVirt's device-plugin path reads
 *   (`PCI_RESOURCE_<NAME>` / `MDEV_PCI_RESOURCE_<NAME>`, extended-resource
 *   claims only) and the bind mount of the request's KEP-5304 metadata file.
 * Files are written atomically (temp file, rename), so the runtime never
 * reads half a spec.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../io/files.js';
import { deviceSpecsFor } from '../deviceplugin/allocate.js';
import type { DeviceEntry } from '../deviceplugin/resources.js';
import { DRIVER_NAME } from './names.js';

const CDI_KIND = `${DRIVER_NAME}/vgpu`;
const CDI_VERSION = '0.6.0';
export const DEFAULT_CDI_DIR = '/var/run/cdi';

export interface CdiDevice {
  name: string;
  containerEdits: {
    deviceNodes?: { path: string; permissions: string }[];
    env?: string[];
    mounts?: { hostPath: string; containerPath: string; options: string[] }[];
  };
}

/** CDI device names allow letters, digits, `_`, `-`, `.` and `:`; ours are derived from UIDs and DNS labels. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

export function cdiName(claimUid: string, part: string): string {
  const name = `${claimUid}-${part}`;
  if (!NAME_RE.test(name)) throw new Error(`internal error: ${JSON.stringify(name)} is not a CDI device name`);
  return name;
}

/** The fully qualified ID the kubelet passes to the runtime. */
export function cdiId(name: string): string {
  return `${CDI_KIND}=${name}`;
}

export class CdiWriter {
  constructor(readonly dir: string = DEFAULT_CDI_DIR) {}

  fileOf(claimUid: string): string {
    if (!/^[a-z0-9-]{1,64}$/.test(claimUid)) throw new Error(`claim UID ${JSON.stringify(claimUid)} is not a UID`);
    return path.join(this.dir, `${DRIVER_NAME}-vgpu_${claimUid}.json`);
  }

  write(claimUid: string, devices: CdiDevice[]): void {
    const file = this.fileOf(claimUid);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    writeFileAtomic(file, JSON.stringify({ cdiVersion: CDI_VERSION, kind: CDI_KIND, devices }, null, 2) + '\n');
  }

  remove(claimUid: string): void {
    fs.rmSync(this.fileOf(claimUid), { force: true });
  }

  /** Claim UIDs with a spec file here (to find specs whose claim is gone). */
  claims(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const prefix = `${DRIVER_NAME}-vgpu_`;
    return names.filter((n) => n.startsWith(prefix) && n.endsWith('.json')).map((n) => n.slice(prefix.length, -'.json'.length));
  }
}

/** Device nodes for VFIO devices: the same nodes the device plugin hands over (`/dev/vfio/vfio` first). */
export function vfioNodes(devices: readonly { iommuGroup: number | null; vfioDev: string | null }[], iommufd: boolean): { path: string; permissions: string }[] {
  // The device plugin's rule reads only the IOMMU group and the cdev of each entry.
  const entries = devices.map((d) => ({ iommuGroup: d.iommuGroup, vfioDev: d.vfioDev }) as DeviceEntry);
  return deviceSpecsFor(entries, iommufd).map((s) => ({ path: s.host_path, permissions: s.permissions }));
}
