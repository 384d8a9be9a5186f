"""The AWS side: the SageMaker deployment flow, SageMaker training (and the entry point the
job runs), and the local AWS stack (moto, MLflow, the model server) on 127.0.0.1."""
