"""The policy pack: ``pulumi preview --policy-pack infra/policy`` checks every stack with
the rules in ``rules.py``, the same functions the infra tests call.

Config ``github-oidc-trust-scoped: {repository: owner/name}`` pins the one repository GitHub
roles may trust; without it, the rule still requires a single, wildcard-free repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The pack runs from infra/policy; the rules import the `infra` package from the repository.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.rules import (  # noqa: E402
    RESOURCE_RULES,
    STACK_RULES,
    Resource,
    Rule,
    oidc_trust_is_scoped,
)


def resource_policy(name: str, rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if name == "github-oidc-trust-scoped":
            repository = (args.get_config() or {}).get("repository")
            checker = oidc_trust_is_scoped(repository)
        else:
            checker = rule
        for message in checker(args.resource_type, args.props):
            report(message, None)

    schema = None
    if name == "github-oidc-trust-scoped":
        schema = PolicyConfigSchema(properties={"repository": {"type": "string"}})
    return ResourceValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        config_schema=schema,
    )


def stack_policy(name: str) -> StackValidationPolicy:
    check = STACK_RULES[name]

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            Resource(
                type=r.resource_type,
                name=r.name,
                props=r.props,
                refs={k: [d.name for d in deps] for k, deps in r.property_dependencies.items()},
            )
            for r in args.resources
        ]
        for message in check(resources):
            report(message, None)

    return StackValidationPolicy(
        name=name, description=(check.__doc__ or name).strip().splitlines()[0], validate=validate
    )


def policy_pack() -> PolicyPack:
    return PolicyPack(
        name="mlops-platform",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=[
            *(resource_policy(name, rule) for name, rule in RESOURCE_RULES.items()),
            *(stack_policy(name) for name in STACK_RULES),
        ],
    )


if __name__ == "__main__":
    policy_pack()
