/** Helpers shared by the simulator tests. */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { DiskBackend } from '../../../src/sysfs/disk-backend.js';
import type { Root, SysfsBackend } from '../../../src/sysfs/backend.js';
import { SysfsError } from '../../../src/sysfs/errors.js';
import type { PciAddress } from '../../../src/model/pci.js';
import { createSimulatedNode, type SimNodeSpec, type SimulatedNode } from '../../../src/simulator/index.js';
import { parseCreatableVgpuTypes } from '../../../src/inventory/catalog.js';

const addr = (s: string) => s as PciAddress;

export function node(spec: SimNodeSpec): SimulatedNode {
  return createSimulatedNode(spec);
}

/** The first GPU's PF and VF addresses. */
export function pfOf(n: SimulatedNode, i = 0): PciAddress {
  return addr(n.gpus[i]!.pf.addr);
}
export function vfsOf(n: SimulatedNode, i = 0): PciAddress[] {
  const pf = pfOf(n, i);
  return n.port.listVirtfns(pf).map((v) => v.address);
}

/** IDs listed in a VF's creatable_vgpu_types, read through the port as a user would. */
export function creatable(n: SimulatedNode, vf: PciAddress): number[] {
  return parseCreatableVgpuTypes(n.port.readNvidiaAttr(vf, 'creatable_vgpu_types') ?? '').map((e) => e.id);
}

/** The simulated type table of the first GPU (IDs are simulator-internal: fine inside simulator tests). */
export function typeId(n: SimulatedNode, profile: string, gpu = 0): number {
  const t = n.gpus[gpu]!.types.find((x) => x.profile === profile);
  assert.ok(t, `no profile ${profile}`);
  return t.id;
}

/** Assert a call throws SysfsError with the given errno (and optionally detail text). */
export function throwsErrno(fn: () => unknown, code: string, detail?: RegExp): SysfsError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SysfsError, `expected SysfsError ${code}, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (detail) assert.match(caught.detail ?? '', detail);
  return caught;
}

/**
 * Every entry under a root as `path -> description`: `dir`, `link -> target`,
 * `file: contents`, `device`. Links are recorded, not followed, so the dump of
 * a materialised tree can be compared with the in-memory one.
 */
export function dumpTree(b: SysfsBackend, root: Root, devicesAsFiles = false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of b.list(root, rel).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const k = b.kind(root, p);
      if (k === 'link') out.set(p, `link -> ${b.readlink(root, p)}`);
      else if (k === 'dir') {
        out.set(p, 'dir');
        walk(p);
      } else if (k === 'device' || (devicesAsFiles && k === 'file' && root === 'dev')) out.set(p, 'device');
      else out.set(p, `file: ${b.read(root, p)}`);
    }
  };
  walk('');
  return out;
}

/** The tree materialised in `dir`, as DiskBackend reads it, equals the node's in-memory tree. */
export function assertDiskTreeIs(dir: string, n: SimulatedNode, label: string): void {
  const disk = new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') });
  for (const root of ['sys', 'host'] as const) assert.deepEqual([...dumpTree(disk, root)], [...dumpTree(n.backend, root)], `${label}: ${root}`);
  assert.deepEqual([...dumpTree(disk, 'dev', true)], [...dumpTree(n.backend, 'dev')], `${label}: dev`);
}
