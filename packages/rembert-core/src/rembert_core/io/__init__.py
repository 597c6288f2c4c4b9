"""The I/O engine of rembert-core: how checkpoints are read and written, apart from the contract.

- :mod:`~rembert_core.io.atomic`: atomic files, save transactions and their journal, the directory lock,
  the file policy (:func:`~rembert_core.io.atomic.check_file`);
- :mod:`~rembert_core.io.tensors`: :class:`~rembert_core.io.tensors.TensorSource`, the safetensors reader
  (one header parse per file) and the sharded writer;
- :mod:`~rembert_core.io.h5`: transformers' ``tf_model.h5`` (h5py);
- :mod:`~rembert_core.io.tf_names`: the names of Google's original TensorFlow checkpoints;
- :mod:`~rembert_core.io.hub`: Hugging Face Hub ids through its cache;
- :mod:`~rembert_core.io.dtypes`: the one table of dtype names.

Code outside rembert-core imports the public names from :mod:`rembert_core.serialization`.
"""
