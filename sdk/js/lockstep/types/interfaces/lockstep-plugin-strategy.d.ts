/// <reference path="./lockstep-plugin-types.d.ts" />
declare module 'lockstep:plugin/strategy@0.2.0' {
  /**
   * Read the project through `workspace` and propose ordered steps.
   * Must not assume it runs only once: the user may retry.
   */
  export function strategize(planId: string, action: Action): PlanProposal;
  export type Action = import('lockstep:plugin/types@0.2.0').Action;
  export type PlanProposal = import('lockstep:plugin/types@0.2.0').PlanProposal;
  export type PluginError = import('lockstep:plugin/types@0.2.0').PluginError;
}
