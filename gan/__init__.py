"""The sequential GAN that writes new annotated utterances (uses ``nlu``, never a higher room).

* ``vocab``, ``lstm``, ``generator``, ``discriminator`` — G and D and the tables they share;
* ``sampling``, ``batching`` — decoding strategies, and concurrent calls run as one batch;
* ``rewards`` — the reward registry (token | rollout | sentence) of the adversarial update;
* ``config`` -> ``models`` -> ``module`` -> ``training``: ``GanConfig``, the G/D pair, the
  LightningModule with the whole schedule, the job (``train_gan``);
* ``augment`` — ``Augmenter``, a trained generator ready to write utterances; ``lexicon``
  fills carrier phrases with slot values; ``catalogue`` reads the values a team brings and
  mixes them in (also ``refill``: real utterances with their values redrawn, no generator);
  ``gate`` and ``quality`` check what it wrote.
"""
