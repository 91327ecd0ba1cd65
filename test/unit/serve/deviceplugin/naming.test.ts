import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  mdevResourceName,
  pluginSocketName,
  resourceEnvVar,
  resourceNameProblem,
  sriovResourceName,
} from '../../../../src/serve/deviceplugin/naming.js';

test('env var names follow KubeVirt ResourceNameToEnvVar', () => {
  assert.equal(resourceEnvVar('pci', 'nvidia.com/GA102GL_A10'), 'PCI_RESOURCE_NVIDIA_COM_GA102GL_A10');
  assert.equal(resourceEnvVar('pci', 'nvidia.com/L40S-24Q'), 'PCI_RESOURCE_NVIDIA_COM_L40S-24Q');
  assert.equal(resourceEnvVar('mdev', 'nvidia.com/GRID_T4-1Q'), 'MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-1Q');
  assert.equal(resourceEnvVar('pci', 'gpu.example.org/h200x-1.18c'), 'PCI_RESOURCE_GPU_EXAMPLE_ORG_H200X-1_18C');
});

test('env var: upper-case, no / or ., other characters kept', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9.]{1,20}\/[A-Za-z0-9._-]{1,30}$/), fc.constantFrom('pci' as const, 'mdev' as const), (name, kind) => {
      const v = resourceEnvVar(kind, name);
      assert.ok(!/[/.]/.test(v), `${v} contains / or .`);
      assert.equal(v, v.toUpperCase());
      assert.ok(v.startsWith(kind === 'mdev' ? 'MDEV_PCI_RESOURCE_' : 'PCI_RESOURCE_'), `${v}: wrong prefix`);
      assert.equal(v.length, (kind === 'mdev' ? 'MDEV_PCI_RESOURCE_' : 'PCI_RESOURCE_').length + name.length);
    }),
  );
});

test('default names: profile for SR-IOV, type name with spaces to _ for mdev', () => {
  assert.equal(sriovResourceName('L40S-24Q'), 'nvidia.com/L40S-24Q');
  assert.equal(sriovResourceName('H200X-1-18C'), 'nvidia.com/H200X-1-18C');
  assert.equal(mdevResourceName('GRID T4-1Q'), 'nvidia.com/GRID_T4-1Q');
  assert.equal(mdevResourceName('NVIDIA A100-4C'), 'nvidia.com/NVIDIA_A100-4C');
  assert.equal(mdevResourceName('GRID  RTX6000 (x)', 'example.com'), 'example.com/GRID_RTX6000_x');
});

test('resource names are validated as Kubernetes extended resource names', () => {
  assert.equal(resourceNameProblem('nvidia.com/L40S-24Q'), null);
  assert.match(resourceNameProblem('L40S-24Q') ?? '', /<domain>\/<name>/);
  assert.match(resourceNameProblem('a/b/c') ?? '', /exactly one/);
  assert.match(resourceNameProblem('NVIDIA.com/x') ?? '', /domain/);
  assert.match(resourceNameProblem('kubernetes.io/gpu') ?? '', /reserved/);
  assert.match(resourceNameProblem(`nvidia.com/${'x'.repeat(64)}`) ?? '', /1-63/);
  assert.match(resourceNameProblem('nvidia.com/-x') ?? '', /starting and ending/);
  assert.match(resourceNameProblem('nvidia.com/a b') ?? '', /letters, digits/);
});

test('socket names are one-to-one and stay inside the directory', () => {
  assert.equal(pluginSocketName('nvidia.com/L40S-24Q'), 'vmgpu-nvidia.com_L40S-24Q.sock');
  assert.throws(() => pluginSocketName('../../etc/x'), /invalid resource name/);
  assert.notEqual(pluginSocketName('a.com/b_c'), pluginSocketName('a.com/b-c'));
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}\/[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?$/), (name) => {
      const s = pluginSocketName(name);
      assert.ok(!s.includes('/'), `${s} contains /`);
      assert.ok(!s.startsWith('.'), `${s} starts with .`);
    }),
  );
});
