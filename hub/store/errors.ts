export type StoreErrorCode = 'not_found' | 'conflict' | 'limit_exceeded' | 'invalid';

/** A failure of a hub-database operation that callers map to HTTP statuses or resource conditions. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}
