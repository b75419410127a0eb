"""Where IVADAS runs: the `ivadas` command line, the embedded local stack, and the CDK app."""
