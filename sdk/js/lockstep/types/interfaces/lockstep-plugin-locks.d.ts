/// <reference path="./lockstep-plugin-types.d.ts" />
declare module 'lockstep:plugin/locks@0.2.0' {
  /**
   * Take a lease on `name` (letters, digits, `-_.:/`; scoped by the host
   * to the plan's project) for `ttl-ms` milliseconds (clamped by the
   * host to [5 s, 1 h]). Fails fast with `conflict` naming the holder.
   */
  export function acquire(name: string, ttlMs: bigint): Lease;
  export type LockError = import('lockstep:plugin/types@0.2.0').LockError;
  
  export class Lease implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * The full resource name the host locked.
    */
    name(): string;
    /**
    * The fencing token: strictly greater than any earlier holder's.
    */
    token(): bigint;
    /**
    * Extend the lease by `ttl-ms` from now (database clock).
    */
    renew(ttlMs: bigint): void;
    /**
    * Release now. Later calls on this handle return `invalid`.
    */
    release(): void;
    [Symbol.dispose](): void;
  }
}
