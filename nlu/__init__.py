"""The ground floor: the record type, reading data and the joint NLU model (imports no other
package of the project).

* ``utterance`` — ``Utterance``, the one record that crosses every boundary; ``errors``
  its typed errors; ``formats/`` reads and writes it in seven file formats;
* ``dataset``, ``schema`` — samples, splits, upsampling and label mapping over utterances;
* ``tokenizer``, ``embeddings``, ``model``, ``training``, ``domain`` — the joint intent +
  slot model, trained as a Lightning job and used as ``TrainedNlu``; ``metrics`` scores it;
* ``jobs`` — what every job (GAN, bootstrap, study) shares: one data-spec reader (one
  meaning of ``sample``), the ``tracking:`` section, the tracked run; with ``config``,
  ``devices``, ``tracking``, ``rundir``, ``atomic`` beneath it: strict configs, where it
  trains, MLflow runs and models, one process per run folder, atomic writes.
"""
