// Pure parts of the node agent: desired-state selection, state persistence, backoff,
// the KubeVirt merge (never touching foreign entries), the validator and cloud-init.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { backoffDelay, parseDuration } from '../../../src/serve/agent/backoff.js';
import { desiredFromLabels, resolveDesired, LABEL_CONFIG, LABEL_WORKLOAD } from '../../../src/serve/agent/desired.js';
import { StateStore, desiredKey } from '../../../src/serve/agent/state.js';
import { collectAdvertised, mergeManaged } from '../../../src/serve/agent/kubevirt-sync.js';
import { guestCloudInit, parseFeatureType } from '../../../src/serve/agent/cloud-init.js';
import { validateNode } from '../../../src/serve/agent/validator.js';
import { inUseFromAssignments } from '../../../src/serve/agent/podresources.js';
import { createSimulatedNode } from '../../../src/simulator/index.js';
import { readInventory } from '../../../src/inventory/read.js';

const FILE = { text: 'version: v1\nvgpu-configs:\n  a:\n    - devices: all\n      vgpu-devices:\n        L40S-1Q: 32\n', fileName: 'c.yaml' };

void test('desired: label, default, workload modes and bad values', () => {
  const d = desiredFromLabels({ [LABEL_CONFIG]: 'a' }, FILE, undefined);
  assert.ok(d.ok && d.desired.configName === 'a' && d.desired.workload === 'vm-vgpu');
  const def = desiredFromLabels({}, FILE, 'a');
  assert.ok(def.ok && def.desired.configName === 'a');
  const idle = desiredFromLabels({}, FILE, undefined);
  assert.ok(!idle.ok && idle.idle);
  const c = desiredFromLabels({ [LABEL_WORKLOAD]: 'container', [LABEL_CONFIG]: 'a' }, null, undefined);
  assert.ok(c.ok && c.desired.workload === 'container');
  assert.equal(resolveDesired(c.desired).config.entries[0]!.mode, 'host');
  const p = desiredFromLabels({ [LABEL_WORKLOAD]: 'vm-passthrough' }, null, undefined);
  assert.ok(p.ok && resolveDesired(p.desired).config.entries[0]!.mode === 'passthrough');
  const bad = desiredFromLabels({ [LABEL_WORKLOAD]: 'gaming' }, FILE, undefined);
  assert.ok(!bad.ok && /gaming/.test(bad.reason));
  const noFile = desiredFromLabels({ [LABEL_CONFIG]: 'a' }, null, undefined);
  assert.ok(!noFile.ok && /no config file/.test(noFile.reason));
  assert.throws(() => resolveDesired({ workload: 'vm-vgpu', configName: 'nope', configText: FILE.text, fileName: 'c.yaml' }), /nope/);
});

void test('desired key: same inputs same key; the file matters only for vm-vgpu', () => {
  const a = { workload: 'vm-vgpu' as const, configName: 'a', configText: 'x', fileName: 'f' };
  assert.equal(desiredKey(a), desiredKey({ ...a, fileName: 'g' }));
  assert.notEqual(desiredKey(a), desiredKey({ ...a, configText: 'y' }));
  const c = { workload: 'container' as const, configName: null, configText: 'x', fileName: 'f' };
  assert.equal(desiredKey(c), desiredKey({ ...c, configText: 'y' }));
});

void test('state store: atomic save and load, corrupt file is reported with the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-state-'));
  try {
    const s = new StateStore(join(dir, 'nested'));
    assert.equal(s.load(), null);
    const saved = s.save({ workload: 'vm-vgpu', configName: 'a', configText: FILE.text, fileName: 'c.yaml' });
    assert.deepEqual(s.load(), saved);
    assert.deepEqual(readdirSync(join(dir, 'nested')), ['agent-state.json'], 'no temp file left');
    rmSync(s.file);
    writeFileSync(s.file, '{"version":1');
    assert.throws(() => s.load(), /corrupt.*delete it/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});


void test('backoff: grows exponentially, capped, jittered within [d/2, d]', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
      const d = backoffDelay(attempt, 100, 10_000, () => r);
      const cap = Math.min(10_000, 100 * 2 ** (attempt - 1));
      return d >= Math.floor(cap / 2) && d <= cap;
    }),
  );
  assert.ok(backoffDelay(1, 100, 10_000, () => 1) < backoffDelay(4, 100, 10_000, () => 1));
  assert.equal(parseDuration('5m', 'x'), 300_000);
  assert.equal(parseDuration('250ms', 'x'), 250);
  assert.throws(() => parseDuration('soon', '--validate-interval'), /--validate-interval/);
});

void test('kubevirt merge: adds ours, keeps foreign entries, removes only ours, idempotent', () => {
  const nodes = [
    { metadata: { name: 'n1', annotations: { 'vmgpu.io/permitted-host-devices': JSON.stringify({ pciHostDevices: [{ pciVendorSelector: '10de:26b9', resourceName: 'nvidia.com/L40S-1Q', externalResourceProvider: true }], mediatedDevices: [] }) } } },
    { metadata: { name: 'n2', annotations: { 'vmgpu.io/permitted-host-devices': JSON.stringify({ pciHostDevices: [], mediatedDevices: [{ mdevNameSelector: 'GRID T4-1Q', resourceName: 'nvidia.com/GRID_T4-1Q', externalResourceProvider: true }] }) } } },
    { metadata: { name: 'n3', annotations: { 'vmgpu.io/permitted-host-devices': 'not json' } } },
  ];
  const { wanted, problems } = collectAdvertised(nodes);
  assert.equal(problems.length, 1);
  const foreign = { pciVendorSelector: '8086:1234', resourceName: 'intel.com/qat', externalResourceProvider: false };
  const m1 = mergeManaged({ pciHostDevices: [foreign], usb: [{ x: 1 }] } as never, [], wanted);
  assert.deepEqual(m1.permitted.pciHostDevices[0], foreign);
  assert.equal(m1.permitted.pciHostDevices.length, 2);
  assert.equal(m1.permitted.mediatedDevices.length, 1);
  assert.deepEqual((m1.permitted as Record<string, unknown>).usb, [{ x: 1 }], 'other keys are kept');
  assert.equal(m1.added.length, 2);
  // Idempotent.
  const m2 = mergeManaged(m1.permitted, m1.managed, wanted);
  assert.deepEqual(m2.permitted, m1.permitted);
  assert.deepEqual(m2.added, []);
  // A node stops advertising: only our entry goes.
  const m3 = mergeManaged(m2.permitted, m2.managed, collectAdvertised([nodes[0]!]).wanted);
  assert.deepEqual(m3.permitted.mediatedDevices, []);
  assert.deepEqual(m3.permitted.pciHostDevices.map((e) => e.resourceName).sort(), ['intel.com/qat', 'nvidia.com/L40S-1Q']);
  // An entry the user wrote that equals ours is not claimed, so it is never removed.
  const userOwned = { pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-1Q', externalResourceProvider: true };
  const m4 = mergeManaged({ pciHostDevices: [userOwned], mediatedDevices: [] }, [], collectAdvertised([nodes[0]!]).wanted);
  assert.deepEqual(m4.managed, []);
  const m5 = mergeManaged(m4.permitted, m4.managed, { pciHostDevices: [], mediatedDevices: [] });
  assert.deepEqual(m5.permitted.pciHostDevices, [userOwned]);
  // Conflict: the same resource served by virt-handler.
  const m6 = mergeManaged({ pciHostDevices: [{ pciVendorSelector: '10DE:26B9', resourceName: 'nvidia.com/L40S-1Q', externalResourceProvider: false }] }, [], collectAdvertised([nodes[0]!]).wanted);
  assert.match(m6.conflicts[0] ?? '', /externalResourceProvider/);
});

void test('pod-resources: only our resources or our device IDs count as in use', () => {
  const m = inUseFromAssignments(
    [
      { resourceName: 'nvidia.com/L40S-1Q', deviceId: '0000:3B:00.4', pod: 'ns/vm1' },
      { resourceName: 'example.com/nic', deviceId: '0000:5e:00.1', pod: 'ns/net' },
      { resourceName: 'other.io/x', deviceId: '0000:18:00.0', pod: 'ns/vm2' },
    ],
    new Set(['nvidia.com/L40S-1Q']),
    new Set(['0000:18:00.0']),
  );
  assert.deepEqual([...m.keys()].sort(), ['0000:18:00.0', '0000:3b:00.4']);
  assert.match(m.get('0000:3b:00.4')!, /pod ns\/vm1/);
});

void test('validator: a healthy simulated node passes; no IOMMU and missing vfio-dev fail with fixes', () => {
  const sim = createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu', profiles: ['L40S-12Q', 'L40S-12Q'] }] });
  const inv = readInventory(sim.port, { kernelRelease: sim.kernelRelease });
  const r = validateNode({ inventory: inv, plugins: [{ resourceName: 'nvidia.com/L40S-12Q', registered: true, devices: 2, healthy: 2 }], allocatable: { 'nvidia.com/L40S-12Q': '2' } });
  assert.ok(r.passed, JSON.stringify(r.checks));
  const bad = validateNode({
    inventory: { ...inv, node: { ...inv.node, iommuEnabled: false, modules: [] }, gpus: inv.gpus.map((g) => ({ ...g, vfs: g.vfs.map((v) => ({ ...v, vfioDev: null })) })) },
    plugins: [{ resourceName: 'nvidia.com/L40S-12Q', registered: false, devices: 2, healthy: 2 }],
    allocatable: {},
  });
  assert.equal(bad.passed, false);
  const byName = Object.fromEntries(bad.checks.map((c) => [c.check, c]));
  for (const c of ['iommu', 'vfio-modules', 'vf-vfio-dev', 'device-plugins-registered', 'node-allocatable']) {
    assert.equal(byName[c]?.status, 'failed', c);
    assert.ok(byName[c]!.fix.length > 10, `${c} says how to fix it`);
  }
  assert.match(byName.iommu!.fix, /intel_iommu=on/);
  assert.equal(byName['profiles-applied']?.status, 'skipped');
});

void test('cloud-init: token base64, feature type, empty token refused', () => {
  const out = guestCloudInit(Buffer.from('abc\n'), 4);
  assert.match(out, /client_configuration_token\.tok/);
  assert.match(out, /permissions: '0744'/);
  assert.match(out, new RegExp(Buffer.from('abc\n').toString('base64')));
  assert.match(out, /FeatureType=4/);
  assert.throws(() => guestCloudInit(Buffer.from('  \n'), 1, 't.tok'), /t\.tok is empty/);
  assert.equal(parseFeatureType(undefined), 1);
  assert.throws(() => parseFeatureType('3'), /0 .*1 .*2 .*4/);
});
