/**
 * A simulated node on disk (`vmgpu sim create`, `--simulate DIR`): its state
 * in DIR/vmgpu-sim.json, and its tree (DIR/sys, dev, host) for `--sysfs-root`
 * readers. The state is the truth; the tree is derived from it.
 *
 * Saving is incremental: a command that changed nothing writes nothing, and a
 * change patches only the tree entries that differ (the tree before is
 * rebuilt from the state the node was loaded from). Saving is crash-safe:
 *
 *   1. DIR/vmgpu-sim.saving is created: from here the tree may not match;
 *   2. the tree is patched (or, when it cannot be trusted, rewritten whole);
 *   3. the state file is replaced atomically (temp file, rename): the commit;
 *   4. the marker is removed.
 *
 * Killed at any point, DIR holds the old state or the new one, whole. A
 * `--simulate` command that finds the marker rewrites the whole tree from the
 * state on its next save; a `--sysfs-root` reader that finds it is told the
 * tree is half saved (simTreeProblem) instead of reading it. A write through
 * `--sysfs-root` into the tree leaves DIR/vmgpu-sim.edited, so the next save
 * rewrites the tree from the state too (the state wins, as it always did).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatBytes, readTextBounded, writeFileAtomic, writeFileNoFollow } from '../io/files.js';
import { countTree, flattenTrees, patchTree, writeTree, type FlatTree, type MaterializeResult } from './materialize.js';
import { restoreNode, snapshotNode, type SimulatedNode } from './node.js';
import type { SimState } from './snapshot.js';

export const SIM_STATE_FILE = 'vmgpu-sim.json';
/** Present while a save may have left the tree and the state out of step. */
export const SIM_SAVING_MARKER = 'vmgpu-sim.saving';
/** Present once the tree was written through `--sysfs-root` (not through the simulator). */
export const SIM_EDITED_MARKER = 'vmgpu-sim.edited';
/** A state file is a few KiB per GPU. */
const MAX_SIM_STATE_BYTES = 16 * 1024 * 1024;

/** What the node was loaded from (or last saved as) in a directory: the base of the next incremental save. */
interface Baseline {
  dir: string;
  stateText: string;
  /** False when the tree on disk may not match stateText (a marker was there). */
  treeTrusted: boolean;
}

const baselines = new WeakMap<SimulatedNode, Baseline>();

export interface SaveResult extends MaterializeResult {
  /** Tree entries written or removed (all of them for a full write); 0 when nothing changed. */
  changed: number;
  /** Whether the whole tree was written (first save, or a tree that could not be trusted). */
  full: boolean;
}

function stateText(node: SimulatedNode): string {
  return JSON.stringify(snapshotNode(node), null, 1) + '\n';
}

/** The tree a state gives, built from the state alone (never from a node's patched in-memory tree). */
function treeOf(text: string): FlatTree {
  return flattenTrees(restoreNode(JSON.parse(text) as SimState).trees());
}

/** Load a simulated node persisted by `vmgpu sim create` (DIR/vmgpu-sim.json). */
export function loadSimulation(dir: string): SimulatedNode {
  const file = path.join(dir, SIM_STATE_FILE);
  let text: string;
  let node: SimulatedNode;
  try {
    text = readTextBounded(file, MAX_SIM_STATE_BYTES);
    node = restoreNode(JSON.parse(text) as SimState);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EFBIG' ? `it holds more than ${formatBytes(MAX_SIM_STATE_BYTES)}` : e.message;
    throw new Error(`cannot load the simulated node from ${file}: ${why}. Create one with \`vmgpu sim create --out ${dir}\`.`, { cause: err });
  }
  const treeTrusted = !fs.existsSync(path.join(dir, SIM_SAVING_MARKER)) && !fs.existsSync(path.join(dir, SIM_EDITED_MARKER));
  baselines.set(node, { dir: path.resolve(dir), stateText: text, treeTrusted });
  return node;
}

/**
 * Persist a node to DIR (state file and tree), incrementally when DIR holds
 * what the node was loaded from or last saved as; see the protocol above.
 */
export function saveSimulation(node: SimulatedNode, dir: string): SaveResult {
  const text = stateText(node);
  const base = baselines.get(node);
  const incremental = base !== undefined && base.dir === path.resolve(dir) && base.treeTrusted;
  if (incremental && base.stateText === text) return { ...countTree(new Map()), changed: 0, full: false };
  const marker = path.join(dir, SIM_SAVING_MARKER);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Markers are replaced, never written through: a link planted at their name is not followed.
  writeFileNoFollow(marker, `a save of this simulated node started at ${new Date().toISOString()} (pid ${process.pid})\n`);
  const after = treeOf(text);
  let res: SaveResult;
  if (incremental) {
    res = { ...countTree(after), changed: patchTree(treeOf(base.stateText), after, dir), full: false };
  } else {
    const written = writeTree(after, dir);
    res = { ...written, changed: written.files + written.links + written.dirs, full: true };
  }
  writeFileAtomic(path.join(dir, SIM_STATE_FILE), text);
  fs.rmSync(path.join(dir, SIM_EDITED_MARKER), { force: true });
  fs.rmSync(marker);
  baselines.set(node, { dir: path.resolve(dir), stateText: text, treeTrusted: true });
  return res;
}

/** Write a node out as a directory tree plus its state file (`vmgpu sim create`). */
export function materialize(node: SimulatedNode, dir: string): MaterializeResult {
  baselines.delete(node);
  const { files, links, dirs } = saveSimulation(node, dir);
  return { files, links, dirs };
}

/**
 * For a `--sysfs-root` reader of DIR: why its tree must not be read (a save
 * was interrupted, or is running), or null. Only a directory holding a
 * simulator state file is a simulator tree.
 */
export function simTreeProblem(dir: string): string | null {
  if (!fs.existsSync(path.join(dir, SIM_SAVING_MARKER))) return null;
  return (
    `the simulated node in ${dir} is half saved: a command that changed it was stopped while saving (or is saving now), ` +
    `so its files may be part old, part new. Its state file is whole: run \`vmgpu discover --simulate ${dir}\` to rewrite the files from it, then read the tree again`
  );
}

/** Record that the tree in DIR was changed outside the simulator (DiskBackend's first write through `--sysfs-root`). */
export function markSimTreeEdited(dir: string): void {
  writeFileNoFollow(path.join(dir, SIM_EDITED_MARKER), 'the tree was written through --sysfs-root; the next --simulate save rewrites it from the state\n');
}
