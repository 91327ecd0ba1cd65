/**
 * Every rule the planner refuses a config with, one table row each, on an
 * in-memory simulated node: the same errors the CLI's end-to-end test checks
 * through a subprocess, here in milliseconds. A refused plan has no actions.
 * (Rules the file format already enforces, such as `mode: host` with
 * vgpu-devices, are the spec's tests.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SimNodeSpec, SimulatedNode } from '../../../src/simulator/index.js';
import { parsePciAddress } from '../../../src/model/pci.js';
import { configOf, planOn, sim } from './helpers.js';

interface Rule {
  name: string;
  node: SimNodeSpec;
  /** Entries of config `c`, as YAML list items. */
  entries: string;
  error: RegExp;
  /** Devices the simulated VMs hold. */
  held?: string[];
  setup?: (node: SimulatedNode) => void;
}

const L40S: SimNodeSpec = { gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }] };
const TWO_L40S_A100: SimNodeSpec = { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', count: 2 }, { model: 'A100', mode: 'mdev-vgpu' }] };
const A100: SimNodeSpec = { gpus: [{ model: 'A100', mode: 'mdev-vgpu' }] };

const rules: Rule[] = [
  { name: 'unknown profile, with suggestions', node: L40S, entries: '- devices: all\n  vgpu-devices:\n    L40S-13Q: 1', error: /L40S-13Q is not a vGPU profile of L40S \(0000:18:00\.0\)\. Did you mean "L40S-12Q" or "L40S-16Q"\?/ },
  { name: 'a profile of another board names the right prefix', node: L40S, entries: '- devices: all\n  vgpu-devices:\n    A100D-10C: 1', error: /A100D-10C is not a vGPU profile of L40S \(0000:18:00\.0\); its profiles start with L40S-/ },
  { name: 'framebuffer over capacity', node: L40S, entries: '- devices: all\n  vgpu-devices:\n    L40S-24Q: 3', error: /3 x L40S-24Q on 0000:18:00\.0: at most 2 fit on one L40S/ },
  { name: 'more instances than the profile allows', node: L40S, entries: '- devices: all\n  vgpu-devices:\n    L40S-1Q: 33', error: /33 x L40S-1Q on 0000:18:00\.0: at most 32 fit on one L40S/ },
  { name: 'mixed sizes without the flag', node: L40S, entries: '- devices: all\n  vgpu-devices:\n    L40S-12Q: 1\n    L40S-4Q: 2', error: /mixing L40S-12Q and L40S-4Q on 0000:18:00\.0 needs mixed-size vGPU mode, which is off: add `mixed-sizes: true`/ },
  { name: 'two series on one GPU', node: L40S, entries: '- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    L40S-12Q: 1\n    L40S-12C: 1', error: /vGPUs of different series cannot share a GPU \(L40S-12Q, L40S-12C on 0000:18:00\.0\)/ },
  { name: 'GPU index out of range', node: TWO_L40S_A100, entries: '- devices: [7]\n  vgpu-devices:\n    L40S-12Q: 1', error: /index 7 is out of range: this node has 3 NVIDIA GPUs \(indices 0-2/ },
  { name: 'a filter that selects nothing', node: L40S, entries: '- device-filter: "0x233110DE"\n  devices: all\n  vgpu-devices:\n    H100-4C: 1', error: /selects no GPU on this node .*0000:18:00\.0 \(10de:26b9.*check device-filter, devices and pci-addresses/ },
  { name: 'a GPU selected by two entries', node: TWO_L40S_A100, entries: '- devices: [0]\n  vgpu-devices:\n    L40S-12Q: 1\n- device-filter: "0x26B910DE"\n  devices: all\n  vgpu-devices:\n    L40S-24Q: 1', error: /0000:18:00\.0.*line \d+.*one entry/ },
  { name: 'two types on an mdev card', node: A100, entries: '- devices: all\n  vgpu-devices:\n    A100D-10C: 1\n    A100D-20C: 1', error: /A100 80GB PCIe \(0000:18:00\.0\) takes one vGPU type per GPU; requested A100D-10C and A100D-20C/ },
  { name: 'vf-placement out of range', node: L40S, entries: '- devices: all\n  vgpu-devices:\n    L40S-24Q: 1\n  vf-placement:\n    L40S-24Q: [40]', error: /vf-placement: VF index 40 is out of range; L40S has VFs 0-31/ },
  { name: 'vf-placement on an mdev card', node: A100, entries: '- devices: all\n  vgpu-devices:\n    A100D-10C: 1\n  vf-placement:\n    A100D-10C: [0]', error: /vf-placement applies to SR-IOV vGPU GPUs only/ },
  { name: 'mixed-sizes on an mdev card', node: A100, entries: '- devices: all\n  mixed-sizes: true\n  vgpu-devices:\n    A100D-10C: 1', error: /mixed-sizes applies to SR-IOV vGPU GPUs only/ },
  { name: 'passthrough without an IOMMU', node: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu' }], iommu: false }, entries: '- devices: all\n  mode: passthrough', error: /cannot be passed through: the IOMMU is off .*intel_iommu=on/ },
  { name: 'vGPUs on a node without a vGPU manager', node: { gpus: [{ model: 'L40S', mode: 'host' }], vgpuHostDriver: false }, entries: '- devices: all\n  vgpu-devices:\n    L40S-12Q: 1', error: /L40S \(0000:18:00\.0\) cannot host vGPUs: / },
  { name: 'a passed-through GPU on a node without a vGPU manager', node: { gpus: [{ model: 'L40S', mode: 'passthrough' }], vgpuHostDriver: false }, entries: '- devices: all\n  vgpu-devices:\n    L40S-12Q: 1', error: /0000:18:00\.0 is passed through and this node has no NVIDIA vGPU manager driver to host vGPUs/ },
  {
    name: 'more vGPUs than enabled VFs',
    node: { gpus: [{ model: 'L40S', mode: 'sriov-vgpu', vfsEnabled: false }] },
    setup: (n) => n.port.writeSriovNumVfs(parsePciAddress('0000:18:00.0'), 2),
    entries: '- devices: all\n  vgpu-devices:\n    L40S-4Q: 4',
    error: /4 vGPUs requested but only 2 of 32 VFs are enabled on 0000:18:00\.0; disable the VFs/,
  },
];

for (const r of rules) {
  void test(`planner rule: ${r.name}`, async () => {
    const node = sim(r.node);
    for (const d of r.held ?? []) node.hold(d);
    r.setup?.(node);
    const { plan } = await planOn(node, configOf(r.entries));
    assert.ok(
      plan.errors.some((e) => r.error.test(`${e.where}: ${e.message}`)),
      `no error matches ${r.error}; errors: ${JSON.stringify(plan.errors.map((e) => e.message), null, 1)}`,
    );
    assert.deepEqual(plan.actions, [], 'a refused plan has no actions');
  });
}
