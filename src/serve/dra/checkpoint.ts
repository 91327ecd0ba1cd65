/**
 * The DRA driver's checkpoint: which claims it prepared, and exactly which
 * VF, mdev or GPU each of their devices is. It is the ownership marker of
 * everything the driver creates (a VF's type carries no owner): a record is
 * written *before* the first write to the hardware (state `preparing`), so a
 * crash at any point leaves a record of what may exist; a record goes only
 * after its devices are gone. Written atomically (temp file, fsync, rename,
 * fsync of the directory) in the agent's state dir, which survives reboots.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTextBounded, writeFileAtomic } from '../../io/files.js';

const CHECKPOINT_FILE = 'dra-checkpoint.json';
const MAX_BYTES = 16 * 1024 * 1024;

/** The hardware a prepared device is. */
export type Target =
  /** An SR-IOV vGPU: VF `index` of the GPU, with the profile's type. */
  | { kind: 'vf'; address: string; index: number }
  /** An mdev vGPU on `parent` (the GPU, or one of its VFs). */
  | { kind: 'mdev'; uuid: string; parent: string }
  /** The whole GPU on a VFIO driver. */
  | { kind: 'whole'; address: string };

export interface PreparedDevice {
  /** The claim's requests this device was allocated for. */
  requests: string[];
  pool: string;
  device: string;
  shareId: string | null;
  gpu: string;
  /** null: the whole GPU. */
  profile: string | null;
  /** Chosen by the plan (an mdev's UUID, a free VF) before the record is first written. */
  target: Target;
  /** vgpu_params from the claim's opaque config (`k=v,...`), or null. */
  params: string | null;
}

export interface ClaimRecord {
  uid: string;
  namespace: string;
  name: string;
  state: 'preparing' | 'prepared' | 'unpreparing';
  devices: PreparedDevice[];
  /** CDI device IDs returned to the kubelet, per device name (set once prepared). */
  cdi: Record<string, string[]>;
  since: string;
}

interface FileContent {
  version: 1;
  claims: ClaimRecord[];
}

export class Checkpoint {
  readonly file: string;
  private claims = new Map<string, ClaimRecord>();

  constructor(readonly dir: string) {
    this.file = path.join(dir, CHECKPOINT_FILE);
  }

  /** Read the file; none yet is an empty checkpoint. A corrupt file is an error that names the file and the fix. */
  load(): void {
    let text: string;
    try {
      text = readTextBounded(this.file, MAX_BYTES);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot read the DRA checkpoint ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    let content: FileContent;
    try {
      content = JSON.parse(text) as FileContent;
      if (content?.version !== 1 || !Array.isArray(content.claims) || !content.claims.every(validRecord)) throw new Error('unexpected content');
    } catch (err) {
      throw new Error(
        `the DRA checkpoint ${this.file} is corrupt (${(err as Error).message}); the driver will not guess which vGPUs it owns. ` +
          'Move the file aside once no VM uses a DRA-prepared vGPU on this node, clear the DRA GPUs, and restart the agent',
        { cause: err },
      );
    }
    this.claims = new Map(content.claims.map((c) => [c.uid, c]));
  }

  get(uid: string): ClaimRecord | undefined {
    return this.claims.get(uid);
  }

  all(): ClaimRecord[] {
    return [...this.claims.values()];
  }

  /** Store (or replace) a record and persist before returning. */
  put(record: ClaimRecord): void {
    const next = new Map(this.claims);
    next.set(record.uid, record);
    this.save(next);
  }

  remove(uid: string): void {
    if (!this.claims.has(uid)) return;
    const next = new Map(this.claims);
    next.delete(uid);
    this.save(next);
  }

  private save(next: Map<string, ClaimRecord>): void {
    const content: FileContent = { version: 1, claims: [...next.values()] };
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file, JSON.stringify(content, null, 1) + '\n', { mode: 0o600, durable: true });
    this.claims = next;
  }
}

function validRecord(r: ClaimRecord): boolean {
  return (
    typeof r?.uid === 'string' &&
    typeof r.namespace === 'string' &&
    typeof r.name === 'string' &&
    ['preparing', 'prepared', 'unpreparing'].includes(r.state) &&
    Array.isArray(r.devices) &&
    r.devices.every((d) => typeof d?.device === 'string' && typeof d.gpu === 'string' && Array.isArray(d.requests))
  );
}

/** The PCI address or mdev UUID a target is known by (in-use sets, inventories). */
export function targetId(t: Target): string {
  return t.kind === 'mdev' ? t.uuid : t.address;
}
