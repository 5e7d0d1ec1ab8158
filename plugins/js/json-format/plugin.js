// `json-format`: rewrites JSON files in a normalised layout.
//
// Action params:
// - `globs` (default `**/*.json`): comma-separated globs naming the files.
//   Files inside a `node_modules` folder are left out unless the glob names
//   `node_modules` itself.
// - `indent` (default `2`): spaces per level, 0 to 10 (0 prints each file on
//   one line), or `tab`.
// - `sort_keys` (`"true"` or `"false"`, default `"false"`): whether to sort
//   object keys, recursively, by Unicode code point; repeated keys keep
//   their order.
// - `lock` (default `json-format`): the sub-resource the executor leases
//   while it formats a file, so that two plans formatting the same project
//   do not interleave.
//
// The strategist reads every matching file and proposes one step per file
// whose normalised form (see format.js) differs from its contents; files
// that are not UTF-8, not valid JSON or over the host's read cap are logged
// and skipped. The executor leases `lock`, re-reads the file (seeing earlier
// steps' changes), formats it and releases the lease. If another session
// holds the lease it fails with `plugin-error::lock(conflict)`, naming the
// holder.

import { list, read } from 'lockstep:plugin/workspace@0.2.0';
import { acquire } from 'lockstep:plugin/locks@0.2.0';
import { log } from 'lockstep:plugin/log@0.2.0';

import {
  ParamError,
  compareCodePoints,
  formatBytes,
  outcomeProblem,
  param,
  parseOptions,
  selects,
  stepParams,
} from './format.js';

/** How long the executor asks to hold its lease, in milliseconds (a u64). */
const LEASE_TTL_MS = 30000n;

/** The key of a resource handle's drop method (as the bindings define it). */
const DISPOSE = Symbol.dispose ?? Symbol.for('dispose');

/**
 * A `plugin-error` to return from an export. Throwing it makes the export
 * return `err(payload)`: the bindings return the `payload` property of a
 * thrown value as the error.
 */
class PluginFailure extends Error {
  constructor(tag, val) {
    super(`${tag}: ${typeof val === 'string' ? val : JSON.stringify(val, bigints)}`);
    this.payload = { tag, val };
  }
}

/** JSON.stringify replacer for u64 fields. */
function bigints(_key, value) {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** A u64 of milliseconds since the Unix epoch as an ISO 8601 time. */
function isoTime(ms) {
  const date = new Date(Number(ms));
  return Number.isNaN(date.getTime()) ? `${ms} ms` : date.toISOString();
}

/**
 * The error variant carried by an error thrown from a host import, if any:
 * an import returning `err(x)` throws an Error whose `payload` is `x`.
 */
function hostError(e) {
  if (e instanceof PluginFailure || e === null || typeof e !== 'object') return null;
  const p = e.payload;
  return p !== null && typeof p === 'object' && typeof p.tag === 'string' ? p : null;
}

/** Maps a refused workspace call on `what` to the failure to return. */
function fsFailure(what, err) {
  switch (err.tag) {
    case 'invalid':
      return new PluginFailure('invalid-input', `${what}: ${err.val}`);
    case 'io':
      return new PluginFailure('retryable', `${what}: ${err.val}`);
    case 'not-found':
      return new PluginFailure('permanent', `${what}: not found: ${err.val}`);
    case 'denied':
      return new PluginFailure('permanent', `${what}: denied: ${err.val}`);
    case 'too-large':
      return new PluginFailure('permanent', `${what}: larger than the read cap of ${err.val} bytes`);
    default:
      return new PluginFailure('permanent', `${what}: ${err.tag}: ${err.val}`);
  }
}

/**
 * Runs an export body: returns its value, or throws the `plugin-error` it
 * failed with. Bad params become `invalid-input`; anything unexpected
 * becomes `permanent` (and is logged) instead of trapping.
 */
function guard(what, body) {
  try {
    return body();
  } catch (e) {
    if (e instanceof PluginFailure) throw e;
    if (e instanceof ParamError) throw new PluginFailure('invalid-input', e.message);
    const message = `${what} failed: ${e && e.stack ? `${e}\n${e.stack}` : String(e)}`;
    log('error', message);
    throw new PluginFailure('permanent', message);
  }
}

/** The file's bytes, or `{tooLarge: cap}` if over the read cap. */
function readFile(path) {
  try {
    return read(path);
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    if (err.tag === 'too-large') return { tooLarge: err.val };
    throw fsFailure(path, err);
  }
}

/**
 * The sorted, de-duplicated files matching any of `globs`. Files inside a
 * `node_modules` folder are left out unless the glob names that folder.
 */
function listFiles(globs) {
  const files = new Set();
  for (const glob of globs) {
    let found;
    try {
      found = list(glob);
    } catch (e) {
      const err = hostError(e);
      if (err === null) throw e;
      throw fsFailure(glob, err);
    }
    let kept = 0;
    for (const f of found) {
      if (selects(glob, f)) {
        files.add(f);
        kept++;
      }
    }
    const left = found.length - kept;
    log('debug', `${glob}: ${found.length} files${left ? ` (${left} in node_modules left out)` : ''}`);
  }
  return [...files].sort(compareCodePoints);
}

/** "1 file", "2 files". */
function files(n) {
  return `${n} file${n === 1 ? '' : 's'}`;
}

/** How the options read in a summary. */
function describe(options) {
  const indent = options.indent === '\t' ? 'tab indent' : `indent ${options.indent.length}`;
  return options.sortKeys ? `${indent}, keys sorted` : indent;
}

function strategize(_planId, action) {
  const options = parseOptions(action.params);
  const paths = listFiles(options.globs);

  const steps = [];
  let json = 0;
  let skipped = 0;
  for (const path of paths) {
    const bytes = readFile(path);
    if (bytes.tooLarge !== undefined) {
      log('warn', `skipping ${path}: larger than the read cap of ${bytes.tooLarge} bytes`);
      skipped++;
      continue;
    }
    const result = formatBytes(bytes, options);
    if (!result.ok) {
      log('warn', `skipping ${path}: ${result.reason}`);
      skipped++;
      continue;
    }
    json++;
    if (!result.changed) continue;
    steps.push({
      id: `file-${steps.length + 1}`,
      title: `Format ${path}`,
      params: stepParams(options, path),
      targets: [path],
    });
  }

  let summary = `${steps.length} of ${json} JSON files need formatting (${describe(options)})`;
  if (skipped > 0) {
    summary += `; skipped ${files(skipped)} that could not be read as JSON`;
  }
  log('info', summary);
  return { summary, steps };
}

/** Takes the lease on `name`, or throws `plugin-error::lock` saying why not. */
function takeLease(name) {
  try {
    return acquire(name, LEASE_TTL_MS);
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    if (err.tag === 'conflict') {
      const c = err.val;
      log(
        'warn',
        `lock ${c.resource} is held by ${c.owner} (${c.operation}) on ${c.holder} ` +
          `since ${isoTime(c.acquiredAt)}, until ${isoTime(c.expiresAt)}`,
      );
    } else {
      log('warn', `lock ${name}: ${err.tag}: ${JSON.stringify(err.val, bigints)}`);
    }
    throw new PluginFailure('lock', err);
  }
}

/** Releases `lease`; a failure (the lease expired meanwhile) is returned. */
function releaseLease(lease) {
  try {
    lease.release();
    return null;
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    return err;
  } finally {
    lease[DISPOSE]?.();
  }
}

function execute(_planId, step) {
  const path = param(step.params, 'path');
  if (!path) throw new PluginFailure('invalid-input', 'step param `path` is required');
  const options = parseOptions(step.params);

  const lease = takeLease(options.lock);
  let outcome;
  try {
    const bytes = readFile(path);
    if (bytes.tooLarge !== undefined) {
      throw new PluginFailure(
        'permanent',
        `${path}: larger than the read cap of ${bytes.tooLarge} bytes`,
      );
    }
    const result = formatBytes(bytes, options);
    if (!result.ok) {
      throw new PluginFailure('permanent', `${path}: ${result.reason} (changed since the plan was made?)`);
    }
    outcome = result.changed
      ? {
          changes: [{ tag: 'write', val: { path, contents: result.bytes } }],
          summary: `Formatted ${path} (${describe(options)})`,
        }
      : { changes: [], summary: `${path} is already formatted` };
  } catch (e) {
    releaseLease(lease);
    throw e;
  }
  // The changes were computed under the lease; if it was lost meanwhile,
  // they must not be used.
  const lost = releaseLease(lease);
  if (lost !== null) {
    log('error', `lock ${options.lock} was lost while formatting ${path}: ${lost.tag}`);
    throw new PluginFailure('lock', lost);
  }
  log('info', outcome.summary);
  return outcome;
}

export const strategy = {
  strategize: (planId, action) => guard('strategize', () => strategize(planId, action)),
};

/**
 * The outcome, once its types are checked: the bindings would lower a
 * wrongly typed field (a string for `contents`) without complaint.
 */
function checked(step, outcome) {
  const problem = outcomeProblem(step.id, outcome);
  if (problem !== null) throw new PluginFailure('permanent', problem);
  return outcome;
}

export const execution = {
  execute: (planId, step) => guard('execute', () => checked(step, execute(planId, step))),
};
