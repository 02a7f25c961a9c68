"""Reproducible benchmark runs that print the seed papers' tables.

* ``emdenoise bench ede`` (:mod:`emdenoise.bench.ede`): seed 001 Table 1, Fig. 4, Fig. 5;
* ``emdenoise bench sbd`` (:mod:`emdenoise.bench.sbd`): seed 003 Table 1;
* ``emdenoise bench series`` (:mod:`emdenoise.bench.series`): CSS (seed 004 eq. 10) next to
  the paired-frame error on a real series without ground truth.

Methods are the classical baselines (:mod:`emdenoise.baselines`) and any engine model
(``--method MODEL_ID``). Results go to JSON (everything, with the conventions used),
Markdown (the printed tables) and PNG (KDE curves, error maps, example restorations).
"""
