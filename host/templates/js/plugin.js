// `{{name}}`: upper-cases TODO and FIXME markers in text files.
//
// Action params:
// - `globs` (default `**/*`): comma-separated globs naming the files.
// - `markers` (default `TODO,FIXME`): comma-separated marker words.
//
// The strategist reads every matching file and proposes one step per UTF-8
// file with a marker written in another case (`todo:`, `Fixme:`); the
// executor rewrites that file with the markers upper-cased. The text logic is
// in markers.js, which `node --test` covers under plain Node.
//
// The component imports no WASI (build.sh disables it): `console.log` goes
// nowhere (use `log`), there is no clock, no fetch and no filesystem.

import { list, read } from 'lockstep:plugin/workspace@0.2.0';
import { log } from 'lockstep:plugin/log@0.2.0';

import {
  ParamError,
  files,
  outcomeProblem,
  param,
  parseMarkers,
  splitGlobs,
  upperCaseMarkers,
} from './markers.js';

/**
 * A `plugin-error` to return from an export: the bindings return the
 * `payload` of a thrown value as the export's `err`.
 */
class PluginFailure extends Error {
  constructor(tag, val) {
    super(`${tag}: ${val}`);
    this.payload = { tag, val };
  }
}

/**
 * The error variant of an error thrown by a host import, if it is one: an
 * import returning `err(x)` throws an Error whose `payload` is `x`.
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
 * Runs an export body. Bad params become `invalid-input`; anything
 * unexpected becomes `permanent` (and is logged): an exception that escapes
 * an export would trap the instance without a message.
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

/** A file that cannot be edited as text (not UTF-8, over the read cap). */
class Unreadable extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `path` as text; reads see the changes of earlier steps of the plan. */
function readText(path) {
  let bytes;
  try {
    bytes = read(path);
  } catch (e) {
    const err = hostError(e);
    if (err === null) throw e;
    if (err.tag === 'too-large') throw new Unreadable(`${path}: larger than ${err.val} bytes`);
    throw fsFailure(path, err);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Unreadable(`${path}: not UTF-8 text`);
  }
}

function strategize(_planId, action) {
  const markers = parseMarkers(param(action.params, 'markers'));
  const found = new Set();
  for (const glob of splitGlobs(param(action.params, 'globs'))) {
    let paths;
    try {
      paths = list(glob);
    } catch (e) {
      const err = hostError(e);
      if (err === null) throw e;
      throw fsFailure(glob, err);
    }
    log('debug', `${glob}: ${files(paths.length)}`);
    for (const p of paths) found.add(p);
  }

  const steps = [];
  // Sorted: the plan does not depend on the order of the globs.
  for (const path of [...found].sort()) {
    let text;
    try {
      text = readText(path);
    } catch (e) {
      if (!(e instanceof Unreadable)) throw e;
      log('debug', `skipping ${e.message}`);
      continue;
    }
    if (upperCaseMarkers(text, markers) === null) continue;
    // The executor only receives the step: copy what it needs.
    steps.push({
      id: `file-${steps.length + 1}`,
      title: `Upper-case markers in ${path}`,
      params: [
        ['path', path],
        ['markers', markers.join(',')],
      ],
      targets: [path],
    });
  }

  const summary = `${steps.length} of ${files(found.size)} have markers to upper-case (${markers.join(', ')})`;
  log('info', summary);
  return { summary, steps };
}

function execute(_planId, step) {
  const path = param(step.params, 'path');
  if (!path) throw new PluginFailure('invalid-input', 'step param `path` is required');
  const markers = parseMarkers(param(step.params, 'markers'));
  let text;
  try {
    text = readText(path);
  } catch (e) {
    if (e instanceof Unreadable) throw new PluginFailure('permanent', e.message);
    throw e;
  }
  const result = upperCaseMarkers(text, markers);
  if (result === null) return { changes: [], summary: `${path} has no markers to upper-case` };
  return {
    changes: [{ tag: 'write', val: { path, contents: new TextEncoder().encode(result) } }],
    summary: `Upper-cased the markers in ${path}`,
  };
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
