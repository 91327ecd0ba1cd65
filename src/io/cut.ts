/**
 * Untrusted values in messages: a key, a line or a path from a file someone
 * gave us can be megabytes long. Messages quote at most a screenful of it.
 */

/** `value` quoted as JSON, cut to about `max` characters with the full length said. */
export function quoteCut(value: string, max = 80): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}... (${value.length} characters)`;
}

/** A message cut to at most `maxLines` lines of at most `maxLineChars` characters, saying what was left out. */
export function cutLines(message: string, maxLines = 60, maxLineChars = 1000): string {
  const lines = message.split('\n');
  const shown = lines.slice(0, maxLines).map((l) => (l.length > maxLineChars ? `${l.slice(0, maxLineChars)}... (${l.length - maxLineChars} more characters)` : l));
  if (lines.length > maxLines) shown.push(`... and ${lines.length - maxLines} more lines`);
  return shown.join('\n');
}

const JSON_STRING = /"(?:[^"\\\n]|\\.)*"/g;

/**
 * Every JSON-quoted value in a message (as JSON.stringify writes them) cut to
 * about `max` characters: messages quote what they found, and what they
 * found may be megabytes.
 */
export function cutQuoted(message: string, max = 80): string {
  if (message.length <= max + 2) return message;
  return message.replace(JSON_STRING, (q) => {
    if (q.length <= max + 2) return q;
    let value: string;
    try {
      value = JSON.parse(q) as string;
    } catch {
      return q;
    }
    return quoteCut(value, max);
  });
}
