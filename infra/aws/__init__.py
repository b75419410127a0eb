"""The AWS side of IVADAS as a CDK app: typed configuration, constructs per logical unit, stacks."""
