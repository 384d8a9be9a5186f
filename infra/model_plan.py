"""What runs where, as the Pulumi program reads it: ``pipelines.core.model_plan`` (the CLI's
``mlops render kubernetes`` reads the same plan, so both follow git identically)."""

from pipelines.core.model_plan import ModelPlan, canary_weight, plan, rollout_steps

__all__ = ["ModelPlan", "canary_weight", "plan", "rollout_steps"]
