/**
 * Write a simulated node out as a real directory tree (sys/, dev/, host/)
 * with kernel-style relative symlinks, so `--sysfs-root` and DiskBackend can
 * read it like a host. Attribute files get the driver's current contents;
 * device nodes become empty regular files (creating character devices needs
 * privileges and buys nothing for reading).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Root } from '../sysfs/backend.js';
import type { VDir } from './vfs.js';
import { snapshotNode, type SimulatedNode } from './node.js';

export const SIM_STATE_FILE = 'vmgpu-sim.json';

export interface MaterializeResult {
  files: number;
  links: number;
  dirs: number;
}

export function materialize(node: SimulatedNode, outDir: string): MaterializeResult {
  const trees = node.trees();
  const res: MaterializeResult = { files: 0, links: 0, dirs: 0 };
  fs.mkdirSync(outDir, { recursive: true, mode: 0o755 });
  for (const root of ['sys', 'dev', 'host'] as Root[]) {
    const base = path.join(outDir, root);
    fs.rmSync(base, { recursive: true, force: true });
    writeDir(trees[root], base, res);
  }
  const statePath = path.join(outDir, SIM_STATE_FILE);
  const tmp = `${statePath}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(snapshotNode(node), null, 1) + '\n', { mode: 0o644 });
  fs.renameSync(tmp, statePath);
  return res;
}

function writeDir(d: VDir, at: string, res: MaterializeResult): void {
  fs.mkdirSync(at, { recursive: true, mode: 0o755 });
  res.dirs++;
  for (const [name, node] of d.c) {
    const p = path.join(at, name);
    switch (node.t) {
      case 'd':
        writeDir(node, p, res);
        break;
      case 'f':
        fs.writeFileSync(p, node.read(), { mode: node.write ? 0o644 : 0o444 });
        res.files++;
        break;
      case 'l':
        fs.symlinkSync(node.target, p);
        res.links++;
        break;
      case 'c':
        fs.writeFileSync(p, '', { mode: 0o600 });
        res.files++;
        break;
    }
  }
}
