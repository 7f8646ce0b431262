"""Deep recommenders trained data-parallel: Spark feature shards -> the loader seam -> PyTorch DDP.

Modules, one idea each:

- :mod:`~vidrec.models.deep.params`: a model's parameters from the typed ``deep:`` configuration section;
- :mod:`~vidrec.models.deep.features`: pure Spark transforms that build each model's training rows;
- :mod:`~vidrec.models.deep.shards`: writing those rows as Parquet shards under the warehouse, and retention;
- :mod:`~vidrec.models.deep.loader`: the one seam between Parquet and PyTorch (pyarrow, or Petastorm);
- :mod:`~vidrec.models.deep.networks`: the PyTorch networks, one file each (NeuMF, Mult-VAE, SASRec,
  GRU4Rec, the content encoder with its TextCNN, fusion);
- :mod:`~vidrec.models.deep.train`: the one DDP training loop (``train_worker``), also for ``torchrun``;
- :mod:`~vidrec.models.deep.launch`: ``fit``: features -> shards -> ``TorchDistributor``;
- :mod:`~vidrec.models.deep.score`: batch top-N scoring of users in Spark with a trained model;
- :mod:`~vidrec.models.deep.generators`: the candidate generators (listed in :mod:`vidrec.models.registry`).

Nothing here imports Spark at module level except the Spark-side modules (features, shards, launch,
score, generators); ``train``, ``loader`` and ``networks`` run on a GPU box that has no Java.
"""
