/**
 * The global flags every node-reading command takes. Kept apart from
 * context.ts (which loads the inventory, the simulator and tar) so that the
 * command table in main.ts can look at a flag without loading any of it.
 */
export interface GlobalFlags {
  'sysfs-root'?: string;
  'dev-root'?: string;
  'host-root'?: string;
  'pci-ids'?: string;
  'state-dir'?: string;
  'driver-root'?: string;
  simulate?: string;
}

export const GLOBAL_OPTIONS = {
  'sysfs-root': { type: 'string' },
  'dev-root': { type: 'string' },
  'host-root': { type: 'string' },
  'pci-ids': { type: 'string' },
  'state-dir': { type: 'string' },
  'driver-root': { type: 'string' },
  simulate: { type: 'string' },
} as const;

/** `--sysfs-root FILE.tar.gz`: a capture archive, replayed read-only. */
export function isCaptureArchive(sysfsRoot: unknown): sysfsRoot is string {
  return typeof sysfsRoot === 'string' && /\.(tar\.gz|tgz)$/.test(sysfsRoot);
}
