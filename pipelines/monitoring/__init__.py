"""Production monitoring: anomaly rate, score drift, input drift and confirmed quality over time.

`reference` builds, at evaluation, what the model saw when it was trained (scores of held-out normal
data, statistics of its inputs); `records` reads the inspection log; `drift` holds the statistics
(PSI, the two-sample KS test, a sensor's shift in standard deviations), free of any framework;
`thresholds` the alarm limits per class and why; `monitor` puts them together into one summary;
`report` draws it as HTML; `cloudwatch` publishes it on AWS; `job` is the scheduled entry point.
"""
