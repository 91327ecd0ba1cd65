/**
 * The file-system surface under the sysfs port.
 *
 * Two implementations exist: DiskBackend (a real root such as `/` or a
 * captured or materialised tree) and the simulator's in-memory tree
 * (src/simulator). Only src/sysfs/port.ts calls a backend; it builds every
 * path from validated names, so a backend only ever sees safe relative paths.
 */
export type Root = 'sys' | 'dev' | 'host';

export type EntryKind = 'file' | 'dir' | 'link' | 'device';

export interface SysfsBackend {
  /** Human description of where the data comes from, for messages. */
  readonly description: string;
  /** The absolute path a user would recognise, for error messages. */
  display(root: Root, rel: string): string;
  /** Read a whole attribute file (follows symlinks). Throws SysfsError. */
  read(root: Root, rel: string): string;
  /** Write an attribute file as one write(2). Throws SysfsError with the driver's errno. */
  write(root: Root, rel: string, data: string): void;
  /** The raw target of a symlink. Throws SysfsError (EINVAL if not a link). */
  readlink(root: Root, rel: string): string;
  /** Directory entries (follows symlinks). Throws SysfsError. */
  list(root: Root, rel: string): string[];
  /** What is at a path without following a final symlink; null when nothing is. */
  kind(root: Root, rel: string): EntryKind | null;
  /** Whether a path resolves (following symlinks). */
  exists(root: Root, rel: string): boolean;
}

/** Reject a relative path that could leave its root. Defence in depth: the port already validated every component. */
export function assertSafeRelative(rel: string): void {
  if (rel.length === 0) return;
  if (rel.includes('\0') || rel.startsWith('/') || rel.split('/').some((c) => c === '..' || c === '.' || c === '')) {
    throw new Error(`internal error: unsafe relative path ${JSON.stringify(rel)}`);
  }
}
