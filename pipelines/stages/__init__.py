"""One module per stage of a model's life: validate, split, train, evaluate, gate, register,
promote, status, and ``run`` that chains them. Stages import ``pipelines.core`` and each other,
never the CLI or an outside world's subpackage."""
