"""Monitoring what a server serves, and closing the loop back into the data (issue 13).

Everything here reads a server's request log (``serves/<id>/requests.db``, SQLite in WAL mode, written
by the server alone) and never writes to it:

- ``health``: the health of one answer (schema validity, refusal, empty, cut at max tokens, language),
  judged by the server when it records a request, so the log's rows carry it as columns;
- ``drift``: population stability index and two-sample tests, with their usual readings;
- ``figures``: a window's figures from the log by SQL aggregates (traffic, latency, health, histograms,
  time series), fast over a million requests;
- ``release``: the release eval of a served model, the reference for drift and revalidation;
- ``baseline``: the release eval's distributions (answer lengths, fields, languages, failure rates);
- ``settings``: the workspace's monitor thresholds (``monitor.yaml``);
- ``report``: one server's figures, drift table and alerts, as the app and ``workbench monitor`` show them;
- ``samples``: logged requests selected and sent to a dataset as pending examples (source ``production``);
- ``revalidate``: an eval against the served endpoint, compared with the release eval.
"""
