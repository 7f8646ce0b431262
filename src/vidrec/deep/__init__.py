"""Deep recommenders trained data-parallel: Spark feature shards -> Petastorm -> PyTorch DDP.

Modules, one idea each:

- :mod:`~vidrec.deep.params`: hyper-parameter defaults (mirrored in ``conf/base.yaml``) and their merge
  with the ``deep:`` section of the configuration;
- :mod:`~vidrec.deep.features`: pure Spark transforms that build each model's training rows;
- :mod:`~vidrec.deep.shards`: writing those rows as Parquet shards under the warehouse, and retention;
- :mod:`~vidrec.deep.loader`: the one seam between Parquet and PyTorch (Petastorm today);
- :mod:`~vidrec.deep.models`: the PyTorch models (NeuMF, Mult-VAE, SASRec, content encoder, fusion);
- :mod:`~vidrec.deep.train`: the one DDP training loop (``train_worker``), also a ``torchrun`` entry point;
- :mod:`~vidrec.deep.launch`: ``fit``: features -> shards -> ``TorchDistributor``;
- :mod:`~vidrec.deep.score`: batch top-N scoring of users in Spark with a trained model;
- :mod:`~vidrec.deep.generators`: the candidate generators registered under the algorithm names.

Nothing here imports Spark at module level except the Spark-side modules (features, shards, launch,
score, generators); ``train``, ``loader`` and ``models`` run on a GPU box that has no Java.
"""
