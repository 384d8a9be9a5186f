"""Cost guardrails: a monthly AWS budget for the stack's resources with early alerts.

The budget counts only costs tagged with the stack's ``environment`` tag (activate it as a
cost allocation tag once per account), so dev, staging and prod each have their own limit.
Alerts go to the alerts topic and the listed addresses at 80 % of actual spend and when the
forecast passes 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from pipelines.core.conventions import TAG_ENVIRONMENT


@dataclass
class BudgetArgs:
    environment: str
    monthly_limit_usd: int
    tags: dict[str, str]
    emails: list[str] = field(default_factory=list)
    topic_arn: pulumi.Input[str] | None = None
    actual_percent: float = 80.0
    forecast_percent: float = 100.0


class Budget(pulumi.ComponentResource):
    """One monthly COST budget with an actual-spend and a forecast alert."""

    budget: aws.budgets.Budget

    def __init__(
        self, name: str, args: BudgetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:index:Budget", name, None, opts)
        if args.monthly_limit_usd <= 0:
            raise ValueError(f"budgetMonthlyUsd must be positive, got {args.monthly_limit_usd}")
        subscribers: aws.budgets.BudgetNotificationArgsDict = {
            "comparison_operator": "GREATER_THAN",
            "notification_type": "ACTUAL",
            "threshold": args.actual_percent,
            "threshold_type": "PERCENTAGE",
        }
        if args.emails:
            subscribers["subscriber_email_addresses"] = args.emails
        if args.topic_arn is not None:
            subscribers["subscriber_sns_topic_arns"] = [args.topic_arn]
        forecast: aws.budgets.BudgetNotificationArgsDict = {
            **subscribers,
            "notification_type": "FORECASTED",
            "threshold": args.forecast_percent,
        }
        self.budget = aws.budgets.Budget(
            f"{name}-monthly",
            name=f"mlops-{args.environment}-monthly",
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(args.monthly_limit_usd),
            limit_unit="USD",
            cost_filters=[
                {"name": "TagKeyValue", "values": [f"user:{TAG_ENVIRONMENT}${args.environment}"]}
            ],
            notifications=[subscribers, forecast],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"budget_name": self.budget.name})
