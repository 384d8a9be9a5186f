"""The platform's rules as a Pulumi policy pack (``pulumi preview --policy-pack infra/policy``)."""
