/**
 * Issue 12, defect 2 for capture archives: a small .tar.gz can unpack to
 * gigabytes (a 2 MB archive of 2 GB of zeros cost 2.2 GB before the tar
 * library gave up). Extraction is bounded in total unpacked bytes, in the
 * number of entries and in the size of each file, checked while extracting,
 * and says which bound was hit. Entries a capture never holds (hard links,
 * devices, FIFOs) are not extracted, and no mode bit beyond rwx survives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Header } from 'tar';
import { CAPTURE_LIMITS, extractCapture } from '../../../src/sysfs/capture.js';

interface Entry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO';
  size?: number;
  mode?: number;
  linkpath?: string;
}

/** A .tar.gz written block by block (file bodies are zeros), so huge archives cost little to make. */
function writeArchive(file: string, entries: Iterable<Entry>, trailingZeros = 0): void {
  const out: Buffer[] = [];
  let batch: Buffer[] = [];
  let batched = 0;
  const flush = () => {
    // Concatenated gzip members read as one gzip stream.
    out.push(zlib.gzipSync(Buffer.concat(batch), { level: 1 }));
    batch = [];
    batched = 0;
  };
  const push = (b: Buffer) => {
    batch.push(b);
    batched += b.length;
    if (batched >= 8 << 20) flush();
  };
  const zeros = Buffer.alloc(1 << 20);
  const pushZeros = (n: number) => {
    for (let left = n; left > 0; left -= zeros.length) push(zeros.subarray(0, Math.min(left, zeros.length)));
  };
  for (const e of entries) {
    const block = Buffer.alloc(512);
    new Header({ path: e.path, type: e.type ?? 'File', size: e.size ?? 0, mode: e.mode ?? 0o644, mtime: new Date(0), ...(e.linkpath ? { linkpath: e.linkpath } : {}) }).encode(block, 0);
    push(block);
    pushZeros(Math.ceil((e.size ?? 0) / 512) * 512);
  }
  pushZeros(1024 + trailingZeros);
  flush();
  fs.writeFileSync(file, Buffer.concat(out));
}

function withDir(f: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-capture-limits-'));
  try {
    f(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const MiB = 1 << 20;

void test('the limits are documented numbers', () => {
  assert.deepEqual(CAPTURE_LIMITS, { totalBytes: 128 * MiB, entries: 200_000, fileBytes: 4 * MiB });
});

void test('an archive that unpacks past the total limit (zeros after the end of the tar) is refused while unpacking', () => {
  withDir((dir) => {
    const a = path.join(dir, 'bomb.tar.gz');
    writeArchive(a, [{ path: 'sys/', type: 'Directory' }], 200 * MiB);
    assert.ok(fs.statSync(a).size < 2 * MiB, `the archive is small (${fs.statSync(a).size} bytes)`);
    assert.throws(() => extractCapture(a), /bomb\.tar\.gz: unpacks to more than 128 MiB; a capture is far smaller \(refused while unpacking\)/);
  });
});

void test('a file larger than the per-file limit is refused before it is written', () => {
  withDir((dir) => {
    const a = path.join(dir, 'big.tar.gz');
    writeArchive(a, [{ path: 'sys/', type: 'Directory' }, { path: 'sys/huge', size: 5 * MiB }]);
    assert.throws(() => extractCapture(a), /big\.tar\.gz: sys\/huge is 5242880 bytes; a capture holds no file over 4 MiB/);
  });
});

void test('more entries than the limit are refused', () => {
  withDir((dir) => {
    const a = path.join(dir, 'many.tar.gz');
    function* many(): Generator<Entry> {
      yield { path: 'sys/', type: 'Directory' };
      for (let i = 0; i <= 200_000; i++) yield { path: `sys/f${i}` };
    }
    writeArchive(a, many());
    assert.throws(() => extractCapture(a), /many\.tar\.gz: holds more than 200000 entries; a capture holds far fewer/);
  });
});

void test('hard links, devices and FIFOs are not extracted; set-id bits are dropped', () => {
  withDir((dir) => {
    const a = path.join(dir, 'odd.tar.gz');
    writeArchive(a, [
      { path: 'sys/', type: 'Directory' },
      { path: 'sys/plain', size: 3, mode: 0o4755 },
      { path: 'sys/hard', type: 'Link', linkpath: 'sys/plain' },
      { path: 'sys/zero', type: 'CharacterDevice' },
      { path: 'sys/pipe', type: 'FIFO' },
    ]);
    const out = extractCapture(a);
    assert.deepEqual(fs.readdirSync(path.join(out, 'sys')).sort(), ['plain']);
    assert.equal(fs.statSync(path.join(out, 'sys/plain')).mode & 0o7777, 0o755);
  });
});
