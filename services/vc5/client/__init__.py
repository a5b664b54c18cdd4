"""What vc5-webd and vc5ctl both show: the client's view of the three daemons.

`snapshot` turns the typed values vc5.common.bus decodes (vc5.common.wire
structs) into one immutable Snapshot; `status` renders it as /status.json
(docs/observability.md). Nothing here touches the bus: webd's reader and
vc5ctl each read it their own way (a long-lived watch, a one-shot GetAll)
and hand the decoded properties to the views' `from_properties()`.
"""
