import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allKnownModels, knownModel } from '../../../src/model/models.js';
import { boardForDevice } from '../../../src/model/boards.js';

void test('the models the issue lists are known, spelled as pci.ids spells them', () => {
  const want: Record<string, [string, string, 'sriov' | 'mdev']> = {
    '27b8': ['L4', 'AD104GL [L4]', 'sriov'],
    '26b5': ['L40', 'AD102GL [L40]', 'sriov'],
    '26b9': ['L40S', 'AD102GL [L40S]', 'sriov'],
    '26b1': ['RTX 6000 Ada Generation', 'AD102GL [RTX 6000 Ada Generation]', 'sriov'],
    '2331': ['H100 PCIe', 'GH100 [H100 PCIe]', 'sriov'],
    '2330': ['H100 SXM5 80GB', 'GH100 [H100 SXM5 80GB]', 'sriov'],
    '2321': ['H100 NVL', 'GH100 [H100L 94GB]', 'sriov'],
    '2335': ['H200', 'GH100 [H200 SXM 141GB]', 'sriov'],
    '233b': ['H200 NVL', 'GH100 [H200 NVL]', 'sriov'],
    '20f1': ['A100 PCIe 40GB', 'GA100 [A100 PCIe 40GB]', 'mdev'],
    '20b5': ['A100 80GB PCIe', 'GA100 [A100 PCIe 80GB]', 'mdev'],
    '20b0': ['A100 SXM4 40GB', 'GA100 [A100 SXM4 40GB]', 'mdev'],
    '20b2': ['A100 SXM4 80GB', 'GA100 [A100 SXM4 80GB]', 'mdev'],
    '2236': ['A10', 'GA102GL [A10]', 'mdev'],
    '25b6': ['A16', 'GA107GL [A2 / A16]', 'mdev'],
    '1eb8': ['T4', 'TU104GL [Tesla T4]', 'mdev'],
    '2bb5': ['RTX PRO 6000 Blackwell Server Edition', 'GB202GL [RTX PRO 6000 Blackwell Server Edition]', 'sriov'],
    '2bb9': ['RTX 6000D', 'GB202GL [RTX 6000D]', 'sriov'],
    '2c3a': ['RTX PRO 4500 Blackwell Server Edition', 'GB203GL [RTX PRO 4500 Blackwell Server Edition]', 'sriov'],
    '2901': ['B200', 'GB100 [B200]', 'sriov'],
    '2941': ['GB200', 'GB100 [HGX GB200]', 'sriov'],
  };
  for (const [id, [name, pciName, fw]] of Object.entries(want)) {
    const m = knownModel(id);
    assert.ok(m, id);
    assert.equal(m.name, name, id);
    assert.equal(m.pciName, pciName, id);
    assert.equal(m.vgpuFramework, fw, id);
    assert.equal(m.board, boardForDevice(id)?.board, id);
  }
});

void test('knownModel normalises input and never matches garbage', () => {
  assert.equal(knownModel('0x26B9')?.name, 'L40S');
  assert.equal(knownModel(' 26b9\n')?.name, 'L40S');
  assert.equal(knownModel('26b9x'), undefined);
  assert.equal(knownModel(''), undefined);
  assert.equal(knownModel('../26b9'), undefined);
  assert.equal(knownModel(42 as unknown as string), undefined);
  assert.equal(knownModel('25b6', '157e')?.name, 'A2');
  assert.equal(knownModel('25b6', '14a9')?.name, 'A16');
});

void test('every known model has a board with profiles, or says it has none', () => {
  for (const m of allKnownModels()) {
    if (m.board === null) assert.equal(m.vgpuFramework, 'none');
    else assert.ok((boardForDevice(m.deviceId)?.profiles.length ?? 0) > 0, m.deviceId);
  }
});
