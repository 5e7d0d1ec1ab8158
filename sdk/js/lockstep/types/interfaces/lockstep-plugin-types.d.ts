declare module 'lockstep:plugin/types@0.2.0' {
  /**
   * A key/value parameter. Parameters keep the order the author wrote.
   */
  export type Param = [string, string];
  /**
   * What the user asked for: the `name` and `[params]` of an action file.
   */
  export interface Action {
    /**
     * The action's name, e.g. `add-license-header`.
     */
    name: string,
    /**
     * The action's `[params]` table (string values only).
     */
    params: Array<Param>,
  }
  /**
   * One step of a plan, proposed by a strategist and run by an executor.
   */
  export interface Step {
    /**
     * Identifier unique within the plan, chosen by the strategist.
     */
    id: string,
    /**
     * One line a human reads in the proposal.
     */
    title: string,
    /**
     * Step-specific parameters for the executor.
     */
    params: Array<Param>,
    /**
     * Project-relative paths this step expects to change (informative).
     */
    targets: Array<string>,
  }
  /**
   * The strategist's answer: a summary and ordered steps.
   */
  export interface PlanProposal {
    /**
     * One paragraph a human reads before approving the plan.
     */
    summary: string,
    /**
     * Steps in the order the executor must run them.
     */
    steps: Array<Step>,
  }
  /**
   * Replace (or create) a file with new contents.
   */
  export interface FileWrite {
    /**
     * Project-relative path with `/` separators; no `..`, not absolute.
     */
    path: string,
    /**
     * The complete new contents.
     */
    contents: Uint8Array,
  }
  /**
   * One change to the project proposed by an executor.
   */
  export type Change = ChangeWrite | ChangeDelete;
  /**
   * Write a whole file.
   */
  export interface ChangeWrite {
    tag: 'write',
    val: FileWrite,
  }
  /**
   * Delete a file (project-relative path).
   */
  export interface ChangeDelete {
    tag: 'delete',
    val: string,
  }
  /**
   * What an executor returns for one step.
   */
  export interface StepOutcome {
    /**
     * Changes, applied in order after all steps ran (later ones win).
     */
    changes: Array<Change>,
    /**
     * One line describing what the step did.
     */
    summary: string,
  }
  /**
   * Another session holds the lock you asked for.
   */
  export interface LockConflict {
    /**
     * The resource as the host names it (`project:<id>/res:<name>`).
     */
    resource: string,
    /**
     * The session that holds it.
     */
    owner: string,
    /**
     * What the holder is doing (e.g. `execute plan 0f3c…`).
     */
    operation: string,
    /**
     * Where the holder runs: `host:pid`.
     */
    holder: string,
    /**
     * When the holder acquired it, in milliseconds since the Unix epoch.
     */
    acquiredAt: bigint,
    /**
     * When the holder's lease runs out unless renewed (ms since epoch).
     */
    expiresAt: bigint,
  }
  /**
   * A lease you held ran out (or was force-released) and was lost.
   */
  export interface LockExpired {
    /**
     * The resource whose lease was lost.
     */
    resource: string,
    /**
     * The fencing token the lost lease carried.
     */
    token: bigint,
  }
  /**
   * Why a lock operation failed. These are values, never traps.
   */
  export type LockError = LockErrorConflict | LockErrorExpired | LockErrorInvalid | LockErrorUnavailable;
  /**
   * Another session holds the lock.
   */
  export interface LockErrorConflict {
    tag: 'conflict',
    val: LockConflict,
  }
  /**
   * Your lease is gone; stop using whatever it protected.
   */
  export interface LockErrorExpired {
    tag: 'expired',
    val: LockExpired,
  }
  /**
   * The request itself is wrong (bad name, lease already released…).
   */
  export interface LockErrorInvalid {
    tag: 'invalid',
    val: string,
  }
  /**
   * The lock service could not be reached; retrying may help.
   */
  export interface LockErrorUnavailable {
    tag: 'unavailable',
    val: string,
  }
  /**
   * How a plugin call failed. The host maps traps, timeouts and memory
   * exhaustion into the same taxonomy.
   */
  export type PluginError = PluginErrorInvalidInput | PluginErrorLock | PluginErrorRetryable | PluginErrorPermanent;
  /**
   * The action or step parameters are wrong; retrying will not help.
   */
  export interface PluginErrorInvalidInput {
    tag: 'invalid-input',
    val: string,
  }
  /**
   * A lock the plugin needed was not available.
   */
  export interface PluginErrorLock {
    tag: 'lock',
    val: LockError,
  }
  /**
   * A transient failure; the user may retry the phase.
   */
  export interface PluginErrorRetryable {
    tag: 'retryable',
    val: string,
  }
  /**
   * A failure that retrying will not fix.
   */
  export interface PluginErrorPermanent {
    tag: 'permanent',
    val: string,
  }
  /**
   * The kind of a workspace entry.
   * # Variants
   * 
   * ## `"file"`
   * 
   * A regular file.
   * ## `"directory"`
   * 
   * A directory.
   */
  export type EntryKind = 'file' | 'directory';
  /**
   * Metadata of a workspace entry.
   */
  export interface FileInfo {
    /**
     * The project-relative path.
     */
    path: string,
    /**
     * File or directory.
     */
    kind: EntryKind,
    /**
     * Size in bytes (for files, as the plugin would read it).
     */
    size: bigint,
  }
  /**
   * Why a workspace read was refused. Denials are values, never traps.
   */
  export type FsError = FsErrorNotFound | FsErrorDenied | FsErrorTooLarge | FsErrorInvalid | FsErrorIo;
  /**
   * No such file in the project (or it was deleted by an earlier step).
   */
  export interface FsErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * The path leaves the project, goes through a symlink that leaves
   * it, is absolute, or names host-private state (`.lockstep/`).
   */
  export interface FsErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * The file is larger than the host's read cap (the cap, in bytes).
   */
  export interface FsErrorTooLarge {
    tag: 'too-large',
    val: bigint,
  }
  /**
   * The path or glob is malformed.
   */
  export interface FsErrorInvalid {
    tag: 'invalid',
    val: string,
  }
  /**
   * Any other I/O failure on the host.
   */
  export interface FsErrorIo {
    tag: 'io',
    val: string,
  }
}
