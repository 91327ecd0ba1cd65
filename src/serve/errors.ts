/** Errors in the servers: what to log or report when anything at all was thrown. */

/** The message of a thrown value: an Error's message, else the value as text. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
