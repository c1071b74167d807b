/**
 * Agent errors are values with a code a user can search the docs for. The CLI prints the
 * message (one line, naming the culprit) and exits non-zero.
 */
export type AgentErrorCode =
  | 'missing_table' // a configured table does not exist
  | 'not_a_table' // a configured name is a view, sequence, …
  | 'no_primary_key'
  | 'unsupported_type' // a column type whose text form cannot travel (see agent/sql/types.ts)
  | 'identity_always' // a GENERATED ALWAYS identity column outside the primary key
  | 'bad_additive' // a counter column that is missing, in the key, or not an exact number
  | 'merge_mismatch' // this branch merges a table otherwise than the tenant declares
  | 'other_installation' // hubsync in this database belongs to another tenant or branch
  | 'not_installed'
  | 'install_outdated' // the configured tables differ from the installed ones
  | 'pending_changes' // uninstall would drop changes the hub has not acknowledged
  | 'not_found'; // no such dead letter or conflict, or one already dealt with

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
  }
}
