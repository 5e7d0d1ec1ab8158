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

import {
  NotText,
  Params,
  Permanent,
  count,
  executor,
  listFiles,
  readText,
  strategist,
  unchanged,
  warn,
  withLease,
  writeText,
} from '../../../sdk/js/lockstep/sdk.js';
import { compareCodePoints, formatFile, parseOptions, selects, stepParams } from './format.js';

/** How long the executor asks to hold its lease, in milliseconds. */
const LEASE_TTL_MS = 30000;

/** How the options read in a summary. */
function describe(options) {
  const indent = options.indent === '\t' ? 'tab indent' : `indent ${options.indent.length}`;
  return options.sortKeys ? `${indent}, keys sorted` : indent;
}

export const strategy = strategist((_planId, action) => {
  const options = parseOptions(action.params);
  // Files inside node_modules are left out unless the glob names it.
  const paths = listFiles(options.globs, selects).sort(compareCodePoints);

  const steps = [];
  let json = 0;
  let skipped = 0;
  for (const path of paths) {
    let formatted;
    try {
      formatted = formatFile(path, readText(path), options);
    } catch (e) {
      if (!(e instanceof NotText)) throw e;
      warn(`skipping ${e.message}`);
      skipped++;
      continue;
    }
    json++;
    if (formatted === null) continue;
    steps.push({
      id: `file-${steps.length + 1}`,
      title: `Format ${path}`,
      params: stepParams(options, path),
      targets: [path],
    });
  }

  let summary = `${steps.length} of ${json} JSON files need formatting (${describe(options)})`;
  if (skipped > 0) {
    summary += `; skipped ${count(skipped, 'file', 'files')} that could not be read as JSON`;
  }
  return { summary, steps };
});

export const execution = executor((_planId, step) => {
  const path = new Params(step.params).required('path');
  const options = parseOptions(step.params);

  // The changes are computed under the lease; if it is lost meanwhile,
  // withLease fails the step instead of returning them. A conflict fails it
  // before anything is read.
  return withLease(options.lock, LEASE_TTL_MS, () => {
    let formatted;
    try {
      formatted = formatFile(path, readText(path), options);
    } catch (e) {
      if (e instanceof NotText) throw new Permanent(`${e.message} (changed since the plan was made?)`);
      throw e;
    }
    if (formatted === null) return unchanged(`${path} is already formatted`);
    return {
      changes: [writeText(path, formatted)],
      summary: `Formatted ${path} (${describe(options)})`,
    };
  });
});
