/** Every error maps to its exit code in one table; commands never re-wrap errors to choose one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, EXIT, exitCodeOf } from '../../../src/cli/exit-codes.js';
import { InventoryError } from '../../../src/inventory/read.js';
import { NodeLockBusyError } from '../../../src/machine/lock.js';
import { InputError, InvalidNameError } from '../../../src/model/errors.js';
import { parseDuration } from '../../../src/serve/kube/backoff.js';
import { KubeConfigError } from '../../../src/serve/kube/kube.js';
import { ConfigError } from '../../../src/spec/config.js';
import { SysfsError } from '../../../src/sysfs/errors.js';

void test('exitCodeOf: bad input 2, no sysfs 5, a busy node or any other failure 1, a CliError its own', () => {
  assert.equal(exitCodeOf(new ConfigError('c.yaml', [{ path: '', line: 1, column: 1, message: 'x' }])), EXIT.BAD_INPUT);
  assert.equal(exitCodeOf(new InvalidNameError('PCI address', '"x"', 'dddd:bb:dd.f')), EXIT.BAD_INPUT);
  assert.equal(exitCodeOf(new InputError('--wait "x"')), EXIT.BAD_INPUT);
  assert.equal(exitCodeOf(new KubeConfigError('no context')), EXIT.BAD_INPUT);
  assert.equal(exitCodeOf(new InventoryError('no sysfs')), EXIT.NO_SYSFS);
  assert.equal(exitCodeOf(new NodeLockBusyError('/x', null, 0)), EXIT.FAILURE);
  assert.equal(exitCodeOf(new SysfsError('write', '/sys/x', 'EIO')), EXIT.FAILURE);
  assert.equal(exitCodeOf(new CliError('x', EXIT.UNDETERMINED)), EXIT.UNDETERMINED);
  assert.equal(exitCodeOf(new Error('anything')), EXIT.FAILURE);
  assert.equal(exitCodeOf('not an error'), EXIT.FAILURE);
});

void test('a flag helper throws the error that carries its exit code', () => {
  assert.throws(() => parseDuration('soon', '--wait'), (e: unknown) => exitCodeOf(e) === EXIT.BAD_INPUT);
});
