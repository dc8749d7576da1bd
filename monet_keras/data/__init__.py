"""The competition data: where it is and which of its records are good (:mod:`.source`), and
how it is read: decoding, readers, the paired training dataset, the hold-out (:mod:`.pipeline`)."""
