/** SQL text helpers the hub and the agent share. */

/** `"name"`, with embedded quotes doubled: an identifier that reads as written. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
