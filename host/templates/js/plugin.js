// `{{name}}`: upper-cases TODO and FIXME markers in text files.
//
// Action params:
// - `globs` (default `**/*`): comma-separated globs naming the files.
// - `markers` (default `TODO,FIXME`): comma-separated marker words.
//
// The strategist reads every matching file and proposes one step per UTF-8
// file with a marker written in another case (`todo:`, `Fixme:`); the
// executor rewrites that file with the markers upper-cased. The text logic is
// in markers.js, which `node --test` covers under plain Node. The helpers
// come from lockstep/sdk.js (the lockstep SDK).
//
// The component imports no WASI (build.sh disables it): `console.log` goes
// nowhere (use `sdk.info`), there is no clock, no fetch and no filesystem.

import * as sdk from './lockstep/sdk.js';
import { DEFAULT_GLOBS, parseMarkers, upperCaseMarkers } from './markers.js';

export const strategy = sdk.strategist((_planId, action) => {
  const params = new sdk.Params(action.params);
  const markers = parseMarkers(params.get('markers'));
  const files = sdk.listFiles(params.list('globs', DEFAULT_GLOBS));

  const steps = [];
  for (const path of files) {
    const text = sdk.readTextOrSkip(path);
    if (text === null || upperCaseMarkers(text, markers) === null) continue;
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

  const summary = `${steps.length} of ${sdk.count(files.length, 'file', 'files')} have markers to upper-case (${markers.join(', ')})`;
  return { summary, steps };
});

export const execution = sdk.executor((_planId, step) => {
  const params = new sdk.Params(step.params);
  const path = params.required('path');
  const markers = parseMarkers(params.get('markers'));
  // Reads see the changes of earlier steps of the same plan.
  const result = upperCaseMarkers(sdk.readText(path), markers);
  if (result === null) return sdk.unchanged(`${path} has no markers to upper-case`);
  return {
    changes: [sdk.writeText(path, result)],
    summary: `Upper-cased the markers in ${path}`,
  };
});
