declare module 'lockstep:plugin/progress@0.2.0' {
  /**
   * `done` units out of `total` are finished; `message` says, in one line,
   * what is happening now. `total` is 0 when the amount of work is not
   * known. Report at a human pace: a few times a second at most.
   */
  export function report(done: bigint, total: bigint, message: string): void;
}
