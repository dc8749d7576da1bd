"""Kaggle ``gan-getting-started`` data tools: TFRecord schema, reader/writer, checks, demo data.

Library API (import the submodules; importing this package loads nothing heavy):

- :mod:`tfrecords_tools.schema`: the one schema definition (features, naming, encode/decode).
- :mod:`tfrecords_tools.records`: ``iter_records(path)``, ``iter_serialized(path)``,
  ``write_shards(records, directory, domain, n_shards)``.
- :mod:`tfrecords_tools.scan`: ``scan(paths, expected_size=256) -> ScanReport`` (problems as
  data), ``require_clean(paths, expected_size=256)`` (raises ``UserError``).
- :mod:`tfrecords_tools.images`: ``check_jpeg(data, expected_size=None)``.
- :mod:`tfrecords_tools.convert`: ``from_jpg(...)``, ``to_jpg(...)``.
- :mod:`tfrecords_tools.demo`: ``make_demo(out_dir, ...)``; :mod:`tfrecords_tools.scenes` draws it.

Command line: ``python -m tfrecords_tools demo|from-jpg|to-jpg|inspect`` (:mod:`tfrecords_tools.cli`).
"""
