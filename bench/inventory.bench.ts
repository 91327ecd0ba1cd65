/**
 * Inventory benchmark: readInventory over a materialised simulator tree of
 * 1, 2, 4 and 8 × L40S, all 32 VFs enabled and 16 of them configured
 * (L40S-1Q ×16), read through DiskBackend as on a real host.
 *
 *   node --import tsx bench/inventory.bench.ts [--runs 40] [--warmup 5] [--dir /dev/shm]
 *
 * --dir picks where the trees are written (default: the OS temp dir). A real
 * /sys is an in-memory file system, so a tmpfs such as /dev/shm is the closer
 * stand-in; a disk-backed /tmp adds its own per-call cost.
 *
 * Prints median and p90 per size, how time grows per GPU, and a baseline
 * measured in the same run: the same file-system calls the inventory makes
 * (recorded from one run), replayed with plain node:fs and no parsing. The
 * ratio inventory/baseline is vmgpu's own overhead over the I/O floor.
 * Goal (issue 2): median ≤ 20 ms for 8 GPUs × 32 VFs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readInventory } from '../src/inventory/read.js';
import { createSimulatedNode, materialize } from '../src/simulator/index.js';
import type { EntryKind, Root, SysfsBackend } from '../src/sysfs/backend.js';
import { DiskBackend } from '../src/sysfs/disk-backend.js';
import { SysfsPort } from '../src/sysfs/port.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '40' }, warmup: { type: 'string', default: '5' }, dir: { type: 'string', default: os.tmpdir() } } });
const RUNS = Math.max(30, Number(values.runs));
const WARMUP = Math.max(1, Number(values.warmup));
const SIZES = [1, 2, 4, 8];
const GOAL_MS = 20;

type Op = ['read' | 'readlink' | 'list' | 'kind' | 'exists', string];

/** Passes calls through to DiskBackend and records each one's absolute path. */
class Recorder implements SysfsBackend {
  readonly ops: Op[] = [];
  constructor(private readonly inner: DiskBackend) {}
  get description(): string {
    return this.inner.description;
  }
  display(root: Root, rel: string): string {
    return this.inner.display(root, rel);
  }
  read(root: Root, rel: string): string {
    this.ops.push(['read', this.inner.display(root, rel)]);
    return this.inner.read(root, rel);
  }
  write(): void {
    throw new Error('the benchmark never writes');
  }
  readlink(root: Root, rel: string): string {
    this.ops.push(['readlink', this.inner.display(root, rel)]);
    return this.inner.readlink(root, rel);
  }
  list(root: Root, rel: string): string[] {
    this.ops.push(['list', this.inner.display(root, rel)]);
    return this.inner.list(root, rel);
  }
  kind(root: Root, rel: string): EntryKind | null {
    this.ops.push(['kind', this.inner.display(root, rel)]);
    return this.inner.kind(root, rel);
  }
  exists(root: Root, rel: string): boolean {
    this.ops.push(['exists', this.inner.display(root, rel)]);
    return this.inner.exists(root, rel);
  }
}

/** The I/O floor: the recorded calls with plain node:fs (readFileSync etc.), no parsing, no objects. */
function replay(ops: readonly Op[]): void {
  for (const [op, p] of ops) {
    try {
      if (op === 'read') fs.readFileSync(p);
      else if (op === 'readlink') fs.readlinkSync(p);
      else if (op === 'list') fs.readdirSync(p);
      else if (op === 'kind') fs.lstatSync(p);
      else fs.existsSync(p);
    } catch {
      // Missing optional files cost the same failed syscall the inventory pays.
    }
  }
}

function time(fn: () => void): number[] {
  for (let i = 0; i < WARMUP; i++) fn();
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const ms = (x: number) => x.toFixed(2).padStart(7);

interface Row {
  gpus: number;
  functions: number;
  ops: number;
  min: number;
  median: number;
  p90: number;
  base: number;
}

const work = fs.mkdtempSync(path.join(values.dir, 'vmgpu-bench-'));
const rows: Row[] = [];
try {
  for (const n of SIZES) {
    const node = createSimulatedNode({ gpus: [{ model: 'L40S', count: n, mode: 'sriov-vgpu', profiles: Array<string>(16).fill('L40S-1Q') }] });
    const dir = path.join(work, `l40s-${n}`);
    materialize(node, dir);
    const disk = new DiskBackend({ sys: path.join(dir, 'sys'), dev: path.join(dir, 'dev'), host: path.join(dir, 'host') });
    const port = new SysfsPort(disk);
    // Check the tree is what the benchmark claims before timing it.
    const inv = readInventory(port);
    const vfs = inv.gpus.flatMap((g) => g.vfs);
    if (inv.gpus.length !== n || vfs.length !== 32 * n || vfs.filter((v) => v.currentProfile === 'L40S-1Q').length !== 16 * n || inv.warnings.length) {
      throw new Error(`benchmark tree for ${n} GPU(s) is not ${n} × (32 VFs, 16 configured): ${inv.gpus.length} GPUs, ${vfs.length} VFs`);
    }
    const rec = new Recorder(disk);
    readInventory(new SysfsPort(rec));
    const samples = time(() => readInventory(port));
    const base = time(() => replay(rec.ops));
    rows.push({ gpus: n, functions: inv.gpus.length + vfs.length, ops: rec.ops.length, min: samples[0]!, median: quantile(samples, 0.5), p90: quantile(samples, 0.9), base: quantile(base, 0.5) });
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

const one = rows[0]!;
console.log(`inventory benchmark: L40S × N, 32 VFs each, 16 configured (L40S-1Q); DiskBackend on ${values.dir}; ${RUNS} runs after ${WARMUP} warm-up; node ${process.version}, ${os.cpus().length} CPU(s)`);
console.log('');
console.log('GPUs  functions  fs calls   min ms  median ms   p90 ms   baseline ms  vs baseline   vs 1 GPU   per GPU ms');
for (const r of rows) {
  console.log(
    `${String(r.gpus).padStart(4)}  ${String(r.functions).padStart(9)}  ${String(r.ops).padStart(8)}  ${ms(r.min)}  ${ms(r.median)}     ${ms(r.p90)}  ${ms(r.base)}      ${(r.median / r.base).toFixed(2).padStart(6)}x  ${(r.median / one.median).toFixed(2).padStart(7)}x  ${ms(r.median / r.gpus)}`,
  );
}
const eight = rows.find((r) => r.gpus === 8)!;
const growth = (eight.median / one.median / 8).toFixed(2);
console.log('');
console.log(`growth: 8 GPUs take ${(eight.median / one.median).toFixed(2)}x the time of 1 (${growth} of linear); fs calls per GPU ${Math.round(eight.ops / 8)}`);
console.log(`goal: median ≤ ${GOAL_MS} ms for 8 × 32 VFs: ${eight.median <= GOAL_MS ? 'met' : 'MISSED'} (${eight.median.toFixed(2)} ms)`);
