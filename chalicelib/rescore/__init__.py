"""Re-scoring every lead under a rule-set version: the pure replay (``replay``) and the job that
fans it out through a queue (``jobs``), with its own job repository (``store.base.JobRepository``)."""
