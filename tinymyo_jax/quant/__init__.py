"""Fake quantisation for quantisation-aware training: the functional classifier forward with
named int8 points (`graph`), the recipe, calibration and straight-through estimator
(`fake_quant`). The integer pipeline and C export build on them in `export/gap9/`."""
