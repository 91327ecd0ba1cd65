// `vmgpu guest cloud-init`: the guest licensing block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guestCloudInit, parseFeatureType } from '../../../src/cli/guest.js';

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
