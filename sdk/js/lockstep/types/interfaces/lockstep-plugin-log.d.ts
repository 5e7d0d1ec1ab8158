declare module 'lockstep:plugin/log@0.2.0' {
  /**
   * Write one log line.
   */
  export function log(level: Level, message: string): void;
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * Very detailed tracing.
   * ## `"debug"`
   * 
   * Debugging detail.
   * ## `"info"`
   * 
   * Normal progress.
   * ## `"warn"`
   * 
   * Something unexpected but recoverable.
   * ## `"error"`
   * 
   * A failure.
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
