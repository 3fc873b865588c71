// The package's types: the generated declarations of the native binding (index.d.ts,
// checked for drift by the test command) and MeridianError.
export * from './index'

/** Every error Meridian raises; `code` is the stable code string (e.g. "UNAVAILABLE"). */
export declare class MeridianError extends Error {
  readonly code:
    | 'INVALID_ARGUMENT'
    | 'NOT_FOUND'
    | 'ALREADY_EXISTS'
    | 'FAILED_PRECONDITION'
    | 'UNAVAILABLE'
    | 'DEADLINE_EXCEEDED'
    | 'RESOURCE_EXHAUSTED'
    | 'UNRESOLVED_SIBLINGS'
    | 'RESOLVER_TIMEOUT'
    | 'CANCELLED'
    | 'INTERNAL'
    | 'UNKNOWN'
}
