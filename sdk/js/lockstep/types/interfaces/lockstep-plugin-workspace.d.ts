/// <reference path="./lockstep-plugin-types.d.ts" />
declare module 'lockstep:plugin/workspace@0.2.0' {
  /**
   * Project-relative paths of the files matching `pattern`, sorted.
   * 
   * `pattern` is a glob (`**\/*.rs`, `src/*.toml`) or a directory prefix
   * (`src/`); the empty string lists every file. `.lockstep/` is never
   * listed. The host caps the number of entries it returns.
   */
  export function list(pattern: string): Array<string>;
  /**
   * The whole contents of a file, refused with `too-large` past the cap.
   */
  export function read(path: string): Uint8Array;
  /**
   * Metadata of a file or directory.
   */
  export function metadata(path: string): FileInfo;
  export type FileInfo = import('lockstep:plugin/types@0.2.0').FileInfo;
  export type FsError = import('lockstep:plugin/types@0.2.0').FsError;
}
