"""The mask sequence repeats with period 2: calls 3 and 4 repeat the masks of calls 1 and 2
(a counter-based generator whose offset wraps modulo two calls, or two cached masks used in
turn). Successive calls differ. Violates DO-TRAIN-05."""
from dropnorm.zoo.build import layers

DEFECT = {"clause": "DO-TRAIN-05", "summary": "calls 3 and 4 repeat the masks of calls 1 and 2 (period 2)",
          "source": "probe: calls 3/4 repeating calls 1/2 (issue 14)"}


class _PeriodTwo:
    def draw_keep(self, shape, x):
        cache = self.__dict__.setdefault("_period_two", {})
        calls = cache.get(("calls", shape), 0)
        cache[("calls", shape)] = calls + 1
        slot = (shape, calls % 2)
        if calls < 2 or slot not in cache:
            cache[slot] = super().draw_keep(shape, x)
        return cache[slot]


Dropout, Dropout2d, BatchNorm1d, BatchNorm2d, BatchNorm3d = layers(dropout=_PeriodTwo)
