// The lockstep SDK for JavaScript plugins: the `lockstep:plugin@0.2.0`
// imports wrapped in helpers, plus everything in core.js.
//
//     import { Params, executor, listFiles, readText, strategist, writeText } from './lockstep/sdk.js';
//
//     export const strategy = strategist((planId, action) => { … return { summary, steps }; });
//     export const execution = executor((planId, step) => { … return { changes, summary }; });
//
// `strategist(fn)` and `executor(fn)` build the objects the component
// exports: a `PluginFailure` (`InvalidInput`, `Retryable`, `Permanent`,
// `LockFailed`) thrown anywhere below becomes the matching `plugin-error`,
// anything else thrown becomes `permanent` with its message and stack (and
// is logged) instead of trapping the instance, and what `execute` returns is
// checked (a string where bytes belong is refused naming the step, the file
// and the field). Import this module only from the plugin's entry module and
// modules the component runs: the `lockstep:plugin/...` imports exist only
// inside the component. Modules that `node --test` runs import core.js.

import { list, read } from 'lockstep:plugin/workspace@0.2.0';
import { acquire } from 'lockstep:plugin/locks@0.2.0';
import { log } from 'lockstep:plugin/log@0.2.0';
import { report } from 'lockstep:plugin/progress@0.2.0';

import {
  InvalidInput,
  LockFailed,
  NotText,
  Permanent,
  PluginFailure,
  Retryable,
  bigints,
  count,
  outcomeProblem,
} from './core.js';

export * from './core.js';

// --- the exports -------------------------------------------------------------

/** Runs an export body and turns what it throws into a `plugin-error`. */
function guarded(what, body) {
  try {
    return body();
  } catch (e) {
    if (e instanceof PluginFailure) throw e;
    if (e instanceof NotText) throw new Permanent(e.message);
    const stack = e && e.stack ? `\n${e.stack}` : '';
    const message = `${what} failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    log('error', `${message}${stack}`);
    throw new Permanent(`${message}${stack}`);
  }
}

/**
 * The `strategy` export: `export const strategy = strategist((planId, action) => proposal)`.
 * @param {(planId: string, action: import('lockstep:plugin/types@0.2.0').Action) => import('lockstep:plugin/types@0.2.0').PlanProposal} fn
 */
export function strategist(fn) {
  return { strategize: (planId, action) => guarded('strategize', () => fn(planId, action)) };
}

/**
 * The `execution` export: `export const execution = executor((planId, step) => outcome)`.
 * The outcome is checked before it is returned.
 * @param {(planId: string, step: import('lockstep:plugin/types@0.2.0').Step) => import('lockstep:plugin/types@0.2.0').StepOutcome} fn
 */
export function executor(fn) {
  return {
    execute: (planId, step) =>
      guarded(`step \`${step.id}\``, () => {
        const outcome = fn(planId, step);
        const problem = outcomeProblem(step.id, outcome);
        if (problem !== null) throw new Permanent(problem);
        return outcome;
      }),
  };
}

// --- the workspace -------------------------------------------------------------

/**
 * The error variant carried by an error thrown from a host import, or null:
 * an import returning `err(x)` throws an Error whose `payload` is `x`.
 */
export function hostError(e) {
  if (e instanceof PluginFailure || e === null || typeof e !== 'object') return null;
  const p = e.payload;
  return p !== null && typeof p === 'object' && typeof p.tag === 'string' ? p : null;
}

/**
 * The failure to throw when the host refused a workspace call on `what` (a
 * path or a glob): a malformed path or glob is `InvalidInput`, an I/O
 * failure `Retryable`, anything else `Permanent`.
 */
export function fsFailure(what, err) {
  switch (err.tag) {
    case 'invalid':
      return new InvalidInput(`${what}: ${err.val}`);
    case 'io':
      return new Retryable(`${what}: ${err.val}`);
    case 'not-found':
      return new Permanent(`${what}: not found: ${err.val}`);
    case 'denied':
      return new Permanent(`${what}: denied: ${err.val}`);
    case 'too-large':
      return new Permanent(`${what}: larger than the read cap of ${err.val} bytes`);
    default:
      return new Permanent(`${what}: ${err.tag}: ${err.val}`);
  }
}

/** Calls a workspace import, turning a refusal on `what` into a failure. */
function fromHost(what, call) {
  try {
    return call();
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    throw fsFailure(what, err);
  }
}

/** Lists `glob`; past the host's cap on entries the whole call is refused. */
function listGlob(glob) {
  try {
    return list(glob);
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    if (err.tag === 'too-large') {
      throw new Permanent(`${glob}: matches more than ${err.val} files, the most one list returns; use narrower globs`);
    }
    throw fsFailure(glob, err);
  }
}

/**
 * The contents of `path` (a Uint8Array); reads during Execute see the
 * changes of earlier steps. A refusal throws what `fsFailure` names.
 */
export function readBytes(path) {
  return fromHost(path, () => read(path));
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `path` as UTF-8 text. Throws `NotText` when it is not UTF-8 or over the
 * host's read cap, and what `fsFailure` names for other refusals.
 */
export function readText(path) {
  let bytes;
  try {
    bytes = read(path);
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    if (err.tag === 'too-large') throw new NotText(`${path}: larger than the read cap of ${err.val} bytes`, true);
    throw fsFailure(path, err);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new NotText(`${path}: not UTF-8 text`);
  }
}

/**
 * `path` as UTF-8 text, or null when it is not a text file: not UTF-8
 * (logged at `debug`) or over the host's read cap (logged at `warn`), what a
 * strategist skips. Other refusals throw as in `readText`.
 */
export function readTextOrSkip(path) {
  try {
    return readText(path);
  } catch (e) {
    if (!(e instanceof NotText)) throw e;
    (e.tooLarge ? warn : debug)(`skipping ${e.message}`);
    return null;
  }
}

/**
 * The files matching any of `globs`, sorted (by UTF-16 code units, as
 * `Array.prototype.sort`) and without repeats. `keep(glob, path)` may leave
 * some out. A malformed glob throws `InvalidInput`; a glob matching more
 * files than the host lists at once (100 000 by default) `Permanent`.
 * @param {string[]} globs
 * @param {(glob: string, path: string) => boolean} [keep]
 * @returns {string[]}
 */
export function listFiles(globs, keep = (_glob, _path) => true) {
  const files = new Set();
  for (const glob of globs) {
    const found = listGlob(glob);
    let kept = 0;
    for (const path of found) {
      if (keep(glob, path)) {
        files.add(path);
        kept++;
      }
    }
    const left = found.length - kept;
    debug(`${glob}: ${count(found.length, 'file', 'files')}${left ? ` (${left} left out)` : ''}`);
  }
  return [...files].sort();
}

// --- leases ----------------------------------------------------------------------

/** The key of a resource handle's drop method (as the bindings define it). */
const DISPOSE = Symbol.dispose ?? Symbol.for('dispose');

/** One line for the log about a failed lock operation on `name`. */
function lockText(name, err) {
  if (err.tag === 'conflict') {
    const c = err.val;
    return `lease ${name} is held by ${c.owner} (${c.operation}) on ${c.holder}`;
  }
  return `lease ${name}: ${err.tag}: ${JSON.stringify(err.val, bigints)}`;
}

/**
 * A held lease on a sub-resource of the plan's project. `release()` it (or
 * use `withLease`); the host releases every lease when the call ends anyway.
 */
export class Lease {
  constructor(name, handle) {
    this.name = name;
    this.handle = handle;
    this.dropped = false;
  }

  /** The full resource name the host locked (`project:<id>/res:<name>`). */
  get resource() {
    return this.handle.name();
  }

  /** The fencing token (a BigInt): greater than any earlier holder's. */
  get token() {
    return this.handle.token();
  }

  /** Extends the lease by `ttlMs` from now; a lost lease throws `LockFailed`. */
  renew(ttlMs) {
    try {
      this.handle.renew(BigInt(ttlMs));
    } catch (e) {
      throw this.lost(e);
    }
  }

  /**
   * Releases the lease now; a lease lost before (expired, force-released)
   * throws `LockFailed`: what was computed under it must not be used.
   * Releasing again does nothing.
   */
  release() {
    if (this.dropped) return;
    try {
      this.handle.release();
    } catch (e) {
      throw this.lost(e);
    } finally {
      this.drop();
    }
  }

  /** Drops the handle (which releases the lease) without checking it. */
  drop() {
    if (!this.dropped) {
      this.dropped = true;
      this.handle[DISPOSE]?.();
    }
  }

  /** `using lease = takeLease(…)` where the engine supports it. */
  [DISPOSE]() {
    this.drop();
  }

  lost(e) {
    const err = hostError(e);
    if (err === null) return e;
    log('error', lockText(this.name, err));
    return new LockFailed(err);
  }
}

/**
 * Takes a lease on `name` (letters, digits and `-_.:/`) for `ttlMs` (clamped
 * by the host to between 5 s and 1 h). It never waits: if another session
 * holds it, the conflict is logged and `LockFailed` thrown, which fails the
 * call with `plugin-error::lock(conflict)` and tells the user who holds it
 * (exit code 3).
 */
export function takeLease(name, ttlMs = 30000) {
  try {
    return new Lease(name, acquire(name, BigInt(ttlMs)));
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    log('warn', lockText(name, err));
    throw new LockFailed(err);
  }
}

/**
 * Runs `body(lease)` under the lease `name`, then releases it: if `body`
 * returned and the lease was lost meanwhile, throws `LockFailed` instead of
 * returning what `body` computed. If `body` throws, the lease is released
 * and the error goes on.
 */
export function withLease(name, ttlMs, body) {
  const lease = takeLease(name, ttlMs);
  let result;
  try {
    result = body(lease);
  } catch (e) {
    lease.drop();
    throw e;
  }
  lease.release();
  return result;
}

// --- logging and progress -------------------------------------------------------

/** Logs `message` at `debug` (shown with LOCKSTEP_LOG=lockstep::plugin=debug). */
export function debug(message) {
  log('debug', message);
}

/** Logs `message` at `info` (`lockstep plugin test` shows it). */
export function info(message) {
  log('info', message);
}

/** Logs `message` at `warn`. */
export function warn(message) {
  log('warn', message);
}

/** Logs `message` at `error`. */
export function error(message) {
  log('error', message);
}

/**
 * Counts finished units of work and reports each to the host, which shows
 * it to whoever runs the plan (`3/10: formatting a.json`).
 */
export class Progress {
  /** @param {number} total units of work (0 when unknown) */
  constructor(total) {
    this.done = 0;
    this.total = total;
  }

  /** One more unit is finished; `message` says what it was. */
  advance(message) {
    this.done += 1;
    report(BigInt(this.done), BigInt(this.total), message);
  }
}
