/**
 * A simulated node as a real directory tree (sys/, dev/, host/) with
 * kernel-style relative symlinks, so `--sysfs-root` and DiskBackend read it
 * like a host. Attribute files hold the driver's current contents (mode 0644
 * when writable, 0444 when not); device nodes are empty regular files
 * (creating character devices needs privileges and buys nothing for reading).
 *
 * A tree is written whole (writeTree) or patched from one state of the node
 * to the next (patchTree): only the entries that differ are touched, each
 * file replaced atomically. Keeping the tree and the state file in step
 * across crashes is persist.ts's job.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempPathFor, writeFileAtomic } from '../io/files.js';
import type { Root } from '../sysfs/backend.js';
import type { Trees, VDir } from './vfs.js';

/** One entry of a tree on disk, by path relative to the node's directory (`sys/bus/...`). */
export type DiskEntry = { t: 'd' } | { t: 'f'; data: string; mode: number } | { t: 'l'; target: string };

export type FlatTree = Map<string, DiskEntry>;

export interface MaterializeResult {
  files: number;
  links: number;
  dirs: number;
}

const TREE_ROOTS: readonly Root[] = ['sys', 'dev', 'host'];

/** Every entry of the in-memory trees as it is on disk, parents before children. */
export function flattenTrees(trees: Trees): FlatTree {
  const out: FlatTree = new Map();
  const walk = (d: VDir, at: string) => {
    out.set(at, { t: 'd' });
    for (const [name, node] of d.c) {
      const p = `${at}/${name}`;
      if (node.t === 'd') walk(node, p);
      else if (node.t === 'f') out.set(p, { t: 'f', data: node.read(), mode: node.write ? 0o644 : 0o444 });
      else if (node.t === 'l') out.set(p, { t: 'l', target: node.target });
      else out.set(p, { t: 'f', data: '', mode: 0o600 });
    }
  };
  for (const root of TREE_ROOTS) walk(trees[root], root);
  return out;
}

/** Write a tree into `dir`, replacing whatever sys/, dev/ and host/ held. */
export function writeTree(tree: FlatTree, dir: string): MaterializeResult {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const root of TREE_ROOTS) fs.rmSync(path.join(dir, root), { recursive: true, force: true });
  const res: MaterializeResult = { files: 0, links: 0, dirs: 0 };
  for (const [rel, e] of tree) {
    const p = path.join(dir, rel);
    if (e.t === 'd') {
      fs.mkdirSync(p, { mode: 0o755 });
      res.dirs++;
    } else if (e.t === 'l') {
      fs.symlinkSync(e.target, p);
      res.links++;
    } else {
      // A fresh tree: nothing to replace, so a plain write (a crash leaves a marked, unfinished tree).
      fs.writeFileSync(p, e.data, { mode: e.mode });
      res.files++;
    }
  }
  return res;
}

/**
 * Change the tree in `dir` from `before` to `after`, touching only what
 * differs: removed entries first (a removed directory takes its contents),
 * then new and changed ones, parents before children. A changed file or
 * link is replaced with rename(2), never rewritten in place. Returns the
 * number of entries changed.
 */
export function patchTree(before: FlatTree, after: FlatTree, dir: string): number {
  let changed = 0;
  const gone: string[] = [];
  for (const [rel, e] of before) {
    const now = after.get(rel);
    if (now && now.t === e.t) continue;
    // Under a directory already removed: gone with it.
    if (gone.some((g) => rel.startsWith(`${g}/`))) continue;
    fs.rmSync(path.join(dir, rel), { recursive: true, force: true });
    gone.push(rel);
    changed++;
  }
  for (const [rel, e] of after) {
    const was = before.get(rel);
    const p = path.join(dir, rel);
    if (was && was.t === e.t && sameEntry(was, e)) continue;
    if (e.t === 'd') {
      if (!was || was.t !== 'd') fs.mkdirSync(p, { mode: 0o755 });
    } else if (e.t === 'l') {
      const tmp = tempPathFor(p);
      fs.symlinkSync(e.target, tmp);
      fs.renameSync(tmp, p);
    } else {
      writeFileAtomic(p, e.data, { mode: e.mode });
    }
    changed++;
  }
  return changed;
}

function sameEntry(a: DiskEntry, b: DiskEntry): boolean {
  if (a.t === 'd' || b.t === 'd') return a.t === b.t;
  if (a.t === 'l' || b.t === 'l') return a.t === 'l' && b.t === 'l' && a.target === b.target;
  return a.data === b.data && a.mode === b.mode;
}

/** Counts of a flat tree, for messages. */
export function countTree(tree: FlatTree): MaterializeResult {
  const res: MaterializeResult = { files: 0, links: 0, dirs: 0 };
  for (const e of tree.values()) {
    if (e.t === 'd') res.dirs++;
    else if (e.t === 'l') res.links++;
    else res.files++;
  }
  return res;
}
