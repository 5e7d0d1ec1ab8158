/// <reference path="./lockstep-plugin-types.d.ts" />
declare module 'lockstep:plugin/execution@0.2.0' {
  /**
   * Run one step and return the changes it makes. Reads see the changes
   * of earlier steps; nothing is written to the project by this call.
   */
  export function execute(planId: string, step: Step): StepOutcome;
  export type Step = import('lockstep:plugin/types@0.2.0').Step;
  export type StepOutcome = import('lockstep:plugin/types@0.2.0').StepOutcome;
  export type PluginError = import('lockstep:plugin/types@0.2.0').PluginError;
}
