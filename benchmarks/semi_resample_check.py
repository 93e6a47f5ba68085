"""Design check on a dev split (never the test set): does consistency training want the blurred strong view back?

With the exact augmenter round trip (the default since 2026-12-04) the digits pool search lost 8.8 points on one
draw at 2 labels per class with the same recipe as before (`semi(align=True)`): 0.904 → 0.816. The bilinear round
trip blurred every augmented draw, which hurt supervised training (test images are sharp) but may have been a
useful part of a *strong* view, whose job is to be hard. Per draw this trains `semi(align=True)` twice on the same
labelled images and pool, with both views' round trip exact or bilinear, and scores on dev images (pool images
held out of everything). 1 torch thread; ~2 min per semi run on digits.

    python benchmarks/semi_resample_check.py --data digits --ns 2 --seeds 0 1 --out a.jsonl
    python benchmarks/semi_resample_check.py --data digits --from-jsonl a.jsonl b.jsonl
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from dev_split import check_main, draw_table

from synth.data import ImageSet, draw_budget
from synth.recipe import preset
from synth.semi import SemiConfig, train_semi
from synth.training import TrainConfig, accuracy

ARMS = ("semi_exact", "semi_bilinear")


@dataclass(frozen=True)
class _Resampled(SemiConfig):
    """SemiConfig whose views use the given round trip (only here: SemiConfig has no such setting)."""

    resample: str = "exact"

    def augmenters(self):
        weak = None if self.weak == "none" else replace(preset(self.weak), resample=self.resample).build()
        return weak, replace(preset(self.strong), resample=self.resample).build()


def run_draw(data: str, dev: ImageSet, rest: ImageSet, n: int, seed: int) -> dict:
    labelled, unlabelled = draw_budget(rest, n_per_class=n, seed=seed)
    t0, row = time.perf_counter(), {"data": data, "n": n, "seed": seed}
    for resample in ("exact", "bilinear"):
        model = train_semi(labelled, unlabelled, TrainConfig(), _Resampled(align=True, resample=resample), seed=seed)
        row[f"semi_{resample}"] = accuracy(model, dev)
    row["sec"] = round(time.perf_counter() - t0, 1)
    return row


def markdown(rows: list[dict], command: str) -> str:
    return draw_table(rows, command, "Consistency training's views, exact vs bilinear round trip", ARMS,
                      [("bilinear - exact", "semi_bilinear", "semi_exact")])


def main() -> None:
    check_main("semi_resample_check", __doc__, run_draw, markdown, ns=[2])


if __name__ == "__main__":
    main()
