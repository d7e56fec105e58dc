"""An example plugin scorer: does the output contain the target anywhere?

Written against mlx-harness's public scorer API only (``harness.scorers.Scorer``,
``Score``, ``Item``); registered through the ``mlx_harness.scorers`` entry point in
this package's pyproject.toml.
"""

from __future__ import annotations

from harness.scorers import Item, Score, Scorer


class ContainsTarget(Scorer):
    """Passes when the target text occurs in the output (after trimming both).

    Options: ``case_sensitive`` (default true). Per-item number ``position``: where the
    target starts in the output, as a fraction of its length (0 = at the very start),
    averaged by the harness into the ``contains_target.position`` metric.
    """

    name = "contains_target"
    version = "1"  # part of a baseline's fingerprint: bump it when the definition changes
    unbounded = frozenset()  # the pass rate and `position` (a fraction of the output) are shares
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"case_sensitive": {"type": "boolean", "default": True}},
    }

    def score(self, item: Item) -> Score:
        target = (item.case.target or "").strip()
        output = item.output.strip()
        if not self.options.get("case_sensitive", True):
            target, output = target.casefold(), output.casefold()
        if not target:
            return Score(value=0.0, passed=False, detail="the case has no target")
        at = output.find(target)
        if at < 0:
            return Score(value=0.0, passed=False, detail=f"{target[:60]!r} not in the output")
        return Score(value=1.0, passed=True, detail=f"found at character {at}",
                     metrics={"position": at / max(len(output), 1)})
