"""``emdenoise adapt``: self-supervised denoisers trained on the user's own frames (issue 18).

* :mod:`~emdenoise.adapt.data` -- checks, counts, registration, the method the data allow (no torch)
* :mod:`~emdenoise.adapt.scores` -- restoration errors without a clean image (no torch)
* :mod:`~emdenoise.adapt.classical` -- ``classical-auto``: a Gaussian / VST + NLM tuned by those errors
* :mod:`~emdenoise.adapt.config` -- the settings of a run
* :mod:`~emdenoise.adapt.train` -- the training loop (needs the ``[train]`` extra)
* :mod:`~emdenoise.adapt.export` -- ONNX graph, weights and card in the user model folder
"""
