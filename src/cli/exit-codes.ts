/**
 * Exit codes of every vmgpu command (documented in docs/cli.md). Scripts and
 * systemd units depend on them: never renumber.
 */
export const EXIT = {
  /** Success; for `assert`, the node matches. */
  OK: 0,
  /** A runtime failure: a write the kernel refused, a tool that failed. */
  FAILURE: 1,
  /** Bad input: usage, config file, unknown profile, over capacity. Nothing was written. */
  BAD_INPUT: 2,
  /** `assert`: the node does not match the config. */
  MISMATCH: 3,
  /** `apply`: everything else applied, but some changes are blocked by devices in use by VMs. */
  BLOCKED: 4,
  /** The sysfs root cannot be read (missing, not a sysfs tree). */
  NO_SYSFS: 5,
  /**
   * vmgpu cannot tell what is on a GPU (a vGPU type ID no source names): it changed nothing
   * on that GPU (`apply`), or cannot say whether the node matches (`assert`). The message
   * says how to let it name the type.
   */
  UNDETERMINED: 6,
} as const;

/** An error the CLI prints as one clear message (no stack) with its exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.BAD_INPUT,
  ) {
    super(message);
  }
}

/**
 * The exit code of any error, in one place: errors carry their meaning by
 * class, and commands never re-wrap them. Matched by name so that this table
 * loads nothing (every command imports it).
 */
const CODE_BY_ERROR: Record<string, number> = {
  ConfigError: EXIT.BAD_INPUT,
  InvalidNameError: EXIT.BAD_INPUT,
  InputError: EXIT.BAD_INPUT,
  KubeConfigError: EXIT.BAD_INPUT,
  FileTooLargeError: EXIT.BAD_INPUT,
  PciIdsError: EXIT.BAD_INPUT,
  InventoryError: EXIT.NO_SYSFS,
  NodeLockBusyError: EXIT.FAILURE,
};

export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof Error && Object.hasOwn(CODE_BY_ERROR, err.name)) return CODE_BY_ERROR[err.name]!;
  return EXIT.FAILURE;
}
