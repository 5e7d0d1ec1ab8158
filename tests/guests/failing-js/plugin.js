// A plugin that fails on purpose (see ../README.md).

function param(params, key) {
  for (const [k, v] of params) if (k === key) return v;
  return undefined;
}

function parse(path) {
  throw new Error(`no parser for ${path}`);
}

export const strategy = {
  strategize(_planId, action) {
    const modes = (param(action.params, 'modes') || 'ok').split(',');
    if (modes[0] === 'strategize-throw') throw new Error('cannot plan this');
    const steps = modes.map((mode, i) => ({
      id: `step-${i + 1}`,
      title: mode,
      params: [['mode', mode]],
      targets: ['a.txt'],
    }));
    return { summary: `${steps.length} steps: ${modes.join(', ')}`, steps };
  },
};

export const execution = {
  execute(_planId, step) {
    const mode = param(step.params, 'mode');
    if (mode === 'throw') return parse('a.txt');
    if (mode === 'wrong-type') return { changes: [], summary: 42 };
    return { changes: [], summary: `${mode}: nothing to do` };
  },
};
