import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkConfigName,
  checkExtendedResourceName,
  checkParamKey,
  checkParamValue,
  formatDeviceFilter,
  parseDeviceFilter,
  parseProfileKey,
} from '../../../src/spec/grammar.js';
import { closestNames, didYouMean, editDistance } from '../../../src/spec/suggest.js';

test('parseProfileKey: bare and prefixed names normalise to the bare profile', () => {
  for (const [written, profile] of [
    ['L40S-12Q', 'L40S-12Q'],
    ['NVIDIA L40S-12Q', 'L40S-12Q'],
    ['GRID T4-1Q', 'T4-1Q'],
    ['nvidia A100-1-5CME', 'A100-1-5CME'],
    ['H200X-1-18C', 'H200X-1-18C'],
    ['M60-0Q', 'M60-0Q'],
  ] as const) {
    const r = parseProfileKey(written);
    assert.ok(!('error' in r), `${written}: ${'error' in r ? r.error : ''}`);
    assert.equal(r.name, profile);
  }
  const mig = parseProfileKey('A100-2-10C');
  assert.ok(!('error' in mig));
  assert.deepEqual([mig.gpuInstanceSlices, mig.framebufferGB, mig.board], [2, 10, 'A100']);
  const ts = parseProfileKey('L40S-48Q');
  assert.ok(!('error' in ts));
  assert.deepEqual([ts.gpuInstanceSlices, ts.framebufferGB, ts.series], [null, 48, 'Q']);
});

test('parseProfileKey: numbers, lower case and junk are refused with a reason', () => {
  const num = parseProfileKey('557');
  assert.ok('error' in num);
  assert.match(num.error, /profile IDs change between driver versions; use the name, e.g\. L40S-12Q/);
  const lower = parseProfileKey('nvidia l40s-12q');
  assert.ok('error' in lower);
  assert.match(lower.error, /did you mean "L40S-12Q"\?/);
  for (const junk of ['', 'L40S', '../x-1Q', 'L40S-\n12Q', 'a/b-1Q', 'L40S-12Q\u0000']) {
    assert.ok('error' in parseProfileKey(junk), JSON.stringify(junk));
  }
});

test('parseDeviceFilter / formatDeviceFilter', () => {
  assert.deepEqual(parseDeviceFilter('0x26B910DE'), { deviceId: '26b9', vendorId: '10de' });
  assert.deepEqual(parseDeviceFilter('0X10de'), { deviceId: '0000', vendorId: '10de' });
  assert.deepEqual(parseDeviceFilter('0x26B910DE:0x185110de'), {
    deviceId: '26b9',
    vendorId: '10de',
    subsystemDeviceId: '1851',
    subsystemVendorId: '10de',
  });
  for (const bad of ['26B910DE', '0x', '0x126B910DE', '0x26B910DE:', '0x26B910DE:0x1:0x2', 'MODEL', '0x26B9 10DE']) {
    const r = parseDeviceFilter(bad);
    assert.ok('error' in r, bad);
    assert.match(r.error, /0xDDDDVVVV/);
  }
  assert.equal(formatDeviceFilter({ deviceId: '26b9', vendorId: '10de' }), '0x26B910DE');
  assert.equal(formatDeviceFilter({ deviceId: '26b9', vendorId: '10de', subsystemDeviceId: '1851', subsystemVendorId: '10de' }), '0x26B910DE:0x185110DE');
});

test('checkExtendedResourceName follows the Kubernetes rules', () => {
  for (const ok of ['nvidia.com/L40S-12Q', 'nvidia.com/GRID_T4-1Q', 'example.com/a', 'a.b.c/x.y_z']) {
    assert.equal(checkExtendedResourceName(ok), null, ok);
  }
  for (const bad of ['L40S', '/x', 'nvidia.com/', 'nvidia.com/a b', 'kubernetes.io/x', 'foo.kubernetes.io/x', 'requests.x.com/y', 'NVIDIA.com/x', `x.com/${'a'.repeat(64)}`]) {
    assert.notEqual(checkExtendedResourceName(bad), null, bad);
  }
});

test('config names, vgpu_params keys and values', () => {
  assert.equal(checkConfigName('l40s-mixed'), null);
  assert.equal(checkConfigName('A100-1-5C'), null);
  for (const bad of ['', '-a', 'a-', 'a b', 'a/b', 'x'.repeat(64)]) assert.notEqual(checkConfigName(bad), null, bad);
  assert.equal(checkParamKey('frame_rate_limiter'), null);
  assert.notEqual(checkParamKey('_x'), null);
  assert.notEqual(checkParamKey('a=b'), null);
  assert.equal(checkParamValue('0'), null);
  for (const bad of ['', 'a b', 'a,b', 'a=b', 'x\n']) assert.notEqual(checkParamValue(bad), null, JSON.stringify(bad));
});

test('editDistance and closestNames', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('same', 'same'), 0);
  const profiles = ['L40S-1Q', 'L40S-2Q', 'L40S-12Q', 'L40S-24Q', 'L40S-48Q', 'A100-4C'];
  assert.deepEqual(closestNames('L40S-12', profiles), ['L40S-12Q', 'L40S-1Q', 'L40S-2Q']);
  assert.deepEqual(closestNames('l40s-24q', profiles, 1), ['L40S-24Q']);
  assert.deepEqual(closestNames('H100-80C', profiles), []);
  assert.deepEqual(closestNames('x', [], 3), []);
  assert.deepEqual(closestNames('L40S-4Q', profiles, 0), []);
  assert.equal(didYouMean('vgpu-device', ['vgpu-devices', 'devices'], 1), ' Did you mean "vgpu-devices"?');
  assert.equal(didYouMean('L40S-3Q', ['L40S-1Q', 'L40S-2Q']), ' Did you mean "L40S-1Q" or "L40S-2Q"?');
  assert.equal(didYouMean('zzz', ['L40S-1Q']), '');
});
