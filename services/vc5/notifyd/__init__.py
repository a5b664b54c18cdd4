"""vc5-notifyd: ships vc5's journal events to Slack, Teams and Elasticsearch/OpenSearch.

    __main__.py   the command line
    daemon.py     the life cycle (logging, signals, sd_notify, reload)
    settings.py   logging: in vc5.yaml -> which sinks, with what
    follower.py   the journal, read from a cursor (systemd.journal.Reader)
    cursor.py     the cursor file of each sink (commit after the endpoint accepted)
    formats.py    Slack / Teams / Elasticsearch payloads (pure)
    backoff.py    exponential backoff (pure)
    delivery.py   HTTP: one POST per webhook event, one _bulk per batch
    pipeline.py   one sink's loop: read, deliver (retrying), commit
    metrics.py    vc5_notify_* in a Prometheus textfile

docs/notifications.md describes the behaviour; docs/man/vc5-notifyd.8 the command.
"""
