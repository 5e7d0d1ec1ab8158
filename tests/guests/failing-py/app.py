"""A plugin that fails on purpose (see ../README.md)."""

from wit_world import exports
from wit_world.imports.types import Change_Write, FileWrite, PlanProposal, Step, StepOutcome


def _param(params, key):
    for k, v in params:
        if k == key:
            return v
    return None


def _parse(path):
    raise ValueError(f"no parser for {path}")


class Strategy(exports.Strategy):
    def strategize(self, plan_id, action):
        modes = (_param(action.params, "modes") or "ok").split(",")
        if modes[0] == "strategize-throw":
            raise RuntimeError("cannot plan this")
        steps = [
            Step(id=f"step-{i + 1}", title=mode, params=[("mode", mode)], targets=["a.txt"])
            for i, mode in enumerate(modes)
        ]
        return PlanProposal(summary=f"{len(steps)} steps: {', '.join(modes)}", steps=steps)


class Execution(exports.Execution):
    def execute(self, plan_id, step):
        mode = _param(step.params, "mode")
        if mode == "throw":
            return _parse("a.txt")
        if mode == "wrong-type":
            write = FileWrite(path="a.txt", contents="text")
            return StepOutcome(changes=[Change_Write(write)], summary="wrote a str")
        return StepOutcome(changes=[], summary=f"{mode}: nothing to do")
