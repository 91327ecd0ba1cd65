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
