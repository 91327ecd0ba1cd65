/**
 * The two kinds of bad input every room can raise. The command line maps
 * both to exit code 2 (src/cli/exit-codes.ts exitCodeOf): nothing was written.
 */

/** A name that does not fit its grammar: raised before any file is opened or any value written. */
export class InvalidNameError extends Error {
  override readonly name = 'InvalidNameError';
  constructor(
    readonly kind: string,
    readonly value: string,
    readonly expected: string,
  ) {
    super(`invalid ${kind} ${value}: expected ${expected}`);
  }
}

/** A value given to vmgpu (a flag, a spec) that it cannot use; the message says what was wrong and what would do. */
export class InputError extends Error {
  override readonly name = 'InputError';
}
