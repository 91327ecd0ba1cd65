import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPciAddress } from '../../../src/model/pci.js';
import { RealHostTools } from '../../../src/sysfs/host-tools.js';
import { nvlinkPairsFrom, parseGpuBusIds, parseNvlinkMatrix } from '../../../src/sysfs/topo-output.js';

// The shape `nvidia-smi topo -m` prints (recent drivers underline the header with an ANSI escape).
const TOPO = [
  '\x1b[4m\tGPU0\tGPU1\tGPU2\tGPU3\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m',
  'GPU0\t X \tNV12\tNV12\tSYS\tSYS\t0-63\t0\t\tN/A',
  'GPU1\tNV12\t X \tNV12\tSYS\tSYS\t0-63\t0\t\tN/A',
  'GPU2\tNV12\tNV12\t X \tSYS\tPHB\t64-127\t1\t\tN/A',
  'GPU3\tSYS\tSYS\tSYS\t X \tPHB\t64-127\t1\t\tN/A',
  'NIC0\tSYS\tSYS\tPHB\tPHB\t X \t\t\t\t',
  '',
  'Legend:',
  '',
  '  X    = Self',
  '  NV#  = Connection traversing a bonded set of # NVLinks',
  '',
  'NIC Legend:',
  '',
  '  NIC0: mlx5_0',
].join('\n');

const BUS = '0, 00000000:07:00.0\n1, 00000000:0F:00.0\n2, 00000000:47:00.0\n3, 00000000:4E:00.0\n';

test('topo -m: NVLink pairs by nvidia-smi index, each once; NIC columns and legend ignored', () => {
  assert.deepEqual(parseNvlinkMatrix(TOPO), [
    [0, 1],
    [0, 2],
    [1, 2],
  ]);
  assert.deepEqual(parseNvlinkMatrix('GPU0\t X \n'), undefined, 'no header: cannot tell');
  assert.deepEqual(parseNvlinkMatrix('\tGPU0\tCPU Affinity\nGPU0\t X \t0-7\n'), [], 'one GPU: no pairs');
});

test('bus IDs: 8-digit domains to canonical addresses; a bad line makes the map unknown', () => {
  assert.deepEqual([...parseGpuBusIds(BUS)!.entries()], [
    [0, '0000:07:00.0'],
    [1, '0000:0f:00.0'],
    [2, '0000:47:00.0'],
    [3, '0000:4e:00.0'],
  ]);
  assert.equal(parseGpuBusIds('0, 00000000:07:00.0\nNo devices were found\n'), undefined);
});

test('pairs by PCI address; a matrix GPU without an address is "cannot tell"', () => {
  assert.deepEqual(nvlinkPairsFrom(TOPO, BUS), [
    ['0000:07:00.0', '0000:0f:00.0'],
    ['0000:07:00.0', '0000:47:00.0'],
    ['0000:0f:00.0', '0000:47:00.0'],
  ]);
  assert.equal(nvlinkPairsFrom(TOPO, '0, 00000000:07:00.0\n'), undefined);
});

test('RealHostTools runs nvidia-smi topo -m again only when the GPUs on the nvidia driver change; "cannot tell" is not remembered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-topo-'));
  const log = join(dir, 'calls');
  const smi = join(dir, 'nvidia-smi');
  writeFileSync(join(dir, 'topo'), TOPO);
  writeFileSync(join(dir, 'bus'), BUS);
  // A stand-in nvidia-smi: logs each call, prints the fixtures; fails while `broken` exists.
  writeFileSync(smi, `#!/bin/sh\necho "$1" >> '${log}'\n[ -e '${dir}/broken' ] && exit 9\nif [ "$1" = topo ]; then cat '${dir}/topo'; else cat '${dir}/bus'; fi\n`, { mode: 0o755 });
  try {
    const tools = new RealHostTools({ sriovManage: '/nonexistent', nvidiaSmi: smi });
    const four = ['0000:07:00.0', '0000:0f:00.0', '0000:47:00.0', '0000:4e:00.0'].map(checkPciAddress);
    const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').length : 0);
    writeFileSync(join(dir, 'broken'), '');
    assert.equal(await tools.nvlinkPairs(four), undefined);
    rmSync(join(dir, 'broken'));
    const before = calls();
    assert.deepEqual((await tools.nvlinkPairs(four))?.length, 3);
    assert.equal(calls(), before + 2, 'topo -m and the bus query');
    assert.deepEqual((await tools.nvlinkPairs([...four].reverse()))?.length, 3);
    assert.equal(calls(), before + 2, 'same GPUs: remembered');
    await tools.nvlinkPairs(four.slice(0, 3));
    assert.equal(calls(), before + 4, 'a GPU left the nvidia driver: read again');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
