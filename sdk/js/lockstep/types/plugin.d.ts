/// <reference path="./interfaces/lockstep-plugin-execution.d.ts" />
/// <reference path="./interfaces/lockstep-plugin-locks.d.ts" />
/// <reference path="./interfaces/lockstep-plugin-log.d.ts" />
/// <reference path="./interfaces/lockstep-plugin-progress.d.ts" />
/// <reference path="./interfaces/lockstep-plugin-strategy.d.ts" />
/// <reference path="./interfaces/lockstep-plugin-types.d.ts" />
/// <reference path="./interfaces/lockstep-plugin-workspace.d.ts" />
declare module 'lockstep:plugin/plugin@0.2.0' {
  export type * as LockstepPluginLocks020 from 'lockstep:plugin/locks@0.2.0'; // import lockstep:plugin/locks@0.2.0
  export type * as LockstepPluginLog020 from 'lockstep:plugin/log@0.2.0'; // import lockstep:plugin/log@0.2.0
  export type * as LockstepPluginProgress020 from 'lockstep:plugin/progress@0.2.0'; // import lockstep:plugin/progress@0.2.0
  export type * as LockstepPluginTypes020 from 'lockstep:plugin/types@0.2.0'; // import lockstep:plugin/types@0.2.0
  export type * as LockstepPluginWorkspace020 from 'lockstep:plugin/workspace@0.2.0'; // import lockstep:plugin/workspace@0.2.0
  export * as strategy from 'lockstep:plugin/strategy@0.2.0'; // export lockstep:plugin/strategy@0.2.0
  export * as execution from 'lockstep:plugin/execution@0.2.0'; // export lockstep:plugin/execution@0.2.0
}
