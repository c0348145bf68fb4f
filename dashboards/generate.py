#!/usr/bin/env python3
"""Writes dashboards/sluice-overview.json and dashboards/sluice-sources.json, the Grafana
dashboards of sluice's metrics. Edit the panel lists here and run
`python3 dashboards/generate.py`; commit the script and both files.
tests/observability.rs checks that every metric used here exists in a real scrape."""
import json, os

SEL = 'instance=~"$instance"'


def ts(title, exprs, unit="short", description="", stack=False, width=12):
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"stacking": {"mode": "normal" if stack else "none"}}}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l} for i, (e, l) in enumerate(exprs)],
        "gridPos": {"w": width, "h": 8},
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


panels = [
    row("Ingest"),
    ts("Messages received / s", [(f'sum by (listener, transport) (rate(sluice_messages_received_total{{{SEL}}}[$__rate_interval]))', "{{listener}} ({{transport}})")],
       "msg/s", "Messages after framing, per listener and transport.", stack=True),
    ts("Bytes received / s", [(f'sum by (listener) (rate(sluice_bytes_received_total{{{SEL}}}[$__rate_interval]))', "{{listener}}")], "Bps"),
    ts("Connections open", [(f'sum by (listener) (sluice_connections_open{{{SEL}}})', "{{listener}}")], "short"),
    ts("Refused / s", [
        (f'sum by (listener, reason) (rate(sluice_connections_refused_total{{{SEL}}}[$__rate_interval]))', "connections {{listener}}: {{reason}}"),
        (f'sum by (listener, reason) (rate(sluice_datagrams_refused_total{{{SEL}}}[$__rate_interval]))', "datagrams {{listener}}: {{reason}}"),
    ], "short", "Allowlist and connection-limit refusals."),
    ts("TLS handshake failures / s", [(f'sum by (listener, reason) (rate(sluice_tls_handshake_failures_total{{{SEL}}}[$__rate_interval]))', "{{listener}}: {{reason}}")], "short"),
    ts("Message size", [
        (f'histogram_quantile(0.5, sum by (le, listener) (rate(sluice_message_size_bytes_bucket{{{SEL}}}[$__rate_interval])))', "p50 {{listener}}"),
        (f'histogram_quantile(0.99, sum by (le, listener) (rate(sluice_message_size_bytes_bucket{{{SEL}}}[$__rate_interval])))', "p99 {{listener}}"),
    ], "bytes", "After framing. KATA cuts at 32 KB, Perception Point at 1,024 characters: a p99 at the limit means messages are being cut."),
    ts("Messages cut or dropped / s", [
        (f'sum by (listener, reason) (rate(sluice_messages_truncated_total{{{SEL}}}[$__rate_interval]))', "truncated {{listener}}: {{reason}}"),
        (f'sum by (listener, reason) (rate(sluice_udp_datagrams_dropped_total{{{SEL}}}[$__rate_interval]))', "UDP dropped {{listener}}: {{reason}}"),
    ], "short", "Truncated messages are kept (flagged); UDP drops are lost datagrams."),
    ts("Messages per batch", [(
        f'sum by (listener) (rate(sluice_messages_received_total{{{SEL}, transport!="s3"}}[$__rate_interval])) / sum by (listener) (rate(sluice_batches_queued_total{{{SEL}}}[$__rate_interval]))',
        "{{listener}}")], "short",
       "Messages each read of a TCP, TLS or UDP listener queued. A sender slower than sluice is read about once a millisecond; a high figure means the listener is busy."),
    row("Parsing"),
    ts("Parse success ratio by grammar", [(
        f'sum by (grammar) (rate(sluice_parse_total{{{SEL}, status="ok"}}[$__rate_interval])) / sum by (grammar) (rate(sluice_parse_total{{{SEL}}}[$__rate_interval]))',
        "{{grammar}}")], "percentunit", "Share of events parsed without any error. grammar=none: messages no grammar took."),
    ts("Parse outcomes / s", [(f'sum by (grammar, status) (rate(sluice_parse_total{{{SEL}}}[$__rate_interval]))', "{{grammar}} {{status}}")], "short", stack=True),
    ts("Parse errors / s by code", [(f'sum by (grammar, code) (rate(sluice_parse_errors_total{{{SEL}}}[$__rate_interval]))', "{{grammar}}: {{code}}")],
       "short", "Stable error codes, explained in docs/parse-errors.md.", width=24),
    row("Pipeline"),
    ts("Parse queue", [
        (f'sum(sluice_queue_depth{{{SEL}}})', "depth"),
        (f'sum(sluice_queue_capacity{{{SEL}}})', "capacity"),
    ], "short", "Messages waiting for the parse workers."),
    ts("Back-pressure (seconds waited per second)", [
        (f'sum by (listener) (rate(sluice_queue_blocked_seconds_sum{{{SEL}}}[$__rate_interval]))', "listener {{listener}}"),
        (f'sum by (sink) (rate(sluice_sink_blocked_seconds_sum{{{SEL}}}[$__rate_interval]))', "sink {{sink}}"),
    ], "s", "Time listeners waited for room in the queue, and the sink for room in the producer queue."),
    row("Sources"),
    {
        "type": "table", "title": "Sources: seconds since last message",
        "description": "Each source is a grammar and the reporting host (device, else syslog hostname, else sender address). Sorted: the longest silent first.",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": [{"refId": "A", "expr": f'time() - max by (grammar, source) (sluice_source_last_seen_timestamp_seconds{{{SEL}}})',
                     "format": "table", "instant": True}],
        "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []},
        "options": {"sortBy": [{"displayName": "Value", "desc": True}]},
        "gridPos": {"w": 12, "h": 8},
    },
    ts("Messages / s per source", [(f'sum by (grammar, source) (rate(sluice_source_messages_total{{{SEL}}}[$__rate_interval]))', "{{grammar}} {{source}}")],
       "short", "source=\"other\" gathers the sources past general.max_sources."),
    ts("Heartbeat age (over the configured interval)", [(
        f'(time() - max by (grammar, source) (sluice_source_last_heartbeat_timestamp_seconds{{{SEL}}})) / on (grammar) group_left max by (grammar) (sluice_heartbeat_interval_seconds{{{SEL}}})',
        "{{grammar}} {{source}}")], "short",
       "Time since each source's last heartbeat, in heartbeat intervals ([heartbeats] in the configuration). Above 3, SluiceHeartbeatMissing fires.", width=24),
    row("S3 sources"),
    ts("S3 backlog", [
        (f'max by (source) (sluice_s3_objects_pending{{{SEL}}})', "unread objects {{source}}"),
        (f'max by (source) (sluice_s3_objects_listed{{{SEL}}})', "listed {{source}}"),
    ], "short", "Objects under each source's prefix, and those not yet read and delivered."),
    ts("S3 lag and last poll", [
        (f'max by (source) (sluice_s3_lag_seconds{{{SEL}}})', "oldest unread object {{source}}"),
        (f'time() - max by (source) (sluice_s3_last_poll_timestamp_seconds{{{SEL}}})', "since last listing {{source}}"),
    ], "s", "Age of the oldest object not yet read; time since the last successful listing (a rising line: the bucket cannot be listed)."),
    ts("S3 objects / s", [
        (f'sum by (source) (rate(sluice_s3_objects_read_total{{{SEL}}}[$__rate_interval]))', "read {{source}}"),
        (f'sum by (source) (rate(sluice_s3_objects_completed_total{{{SEL}}}[$__rate_interval]))', "delivered and checkpointed {{source}}"),
        (f'sum by (source, reason) (rate(sluice_s3_objects_failed_total{{{SEL}}}[$__rate_interval]))', "failed {{source}}: {{reason}}"),
    ], "short", "Failures are retried at the next poll, except corrupt_gzip (counted, not retried)."),
    ts("S3 records and bytes / s", [
        (f'sum by (source) (rate(sluice_s3_records_total{{{SEL}}}[$__rate_interval]))', "records {{source}}"),
        (f'sum by (source) (rate(sluice_s3_bytes_total{{{SEL}}}[$__rate_interval]))', "bytes {{source}}"),
    ], "short", "Records (one event each) queued for parsing, and object bytes read as stored (compressed)."),
    row("Sink"),
    ts("Events out / s", [
        (f'sum by (topic) (rate(sluice_events_delivered_total{{{SEL}}}[$__rate_interval]))', "delivered {{topic}}"),
        (f'sum by (topic) (rate(sluice_events_dead_lettered_total{{{SEL}}}[$__rate_interval]))', "dead-lettered {{topic}}"),
        (f'sum by (reason) (rate(sluice_events_dropped_total{{{SEL}}}[$__rate_interval]))', "dropped: {{reason}}"),
        (f'sum by (sink) (rate(sluice_events_written_total{{{SEL}}}[$__rate_interval]))', "written ({{sink}})"),
    ], "short", "Kafka: acknowledged by the broker. stdout/file: written."),
    ts("Kafka delivery latency (receive → acknowledgement)", [
        (f'histogram_quantile(0.5, sum by (le) (rate(sluice_kafka_delivery_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p50"),
        (f'histogram_quantile(0.99, sum by (le) (rate(sluice_kafka_delivery_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p99"),
    ], "s"),
    ts("Kafka errors / s", [(f'sum by (class, code) (rate(sluice_kafka_errors_total{{{SEL}}}[$__rate_interval]))', "{{class}}: {{code}}")], "short",
       "client: retried by librdkafka (broker down, timeouts); fatal: the event was dropped."),
    ts("Disk spool", [
        (f'sum(sluice_spool_bytes{{{SEL}}})', "bytes"),
        (f'sum(sluice_spool_records{{{SEL}}})', "events waiting"),
        (f'sum(rate(sluice_events_spooled_total{{{SEL}}}[$__rate_interval]))', "spooled / s"),
        (f'sum(rate(sluice_events_replayed_total{{{SEL}}}[$__rate_interval]))', "replayed / s"),
    ], "short", "Events waiting on disk while Kafka cannot take them."),
    ts("Sink write errors / s", [(f'sum by (sink) (rate(sluice_sink_errors_total{{{SEL}}}[$__rate_interval]))', "{{sink}}")], "short"),
    ts("Oldest spooled event", [(f'max(sluice_spool_oldest_event_age_seconds{{{SEL}}})', "age")], "s",
       "How long the oldest event in the disk spool has waited (0: the spool is empty)."),
    row("Resources"),
    ts("CPU (cores)", [(f'sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval]) and on (instance) sluice_build_info)', "{{instance}}")], "short",
       "CPU seconds per second of each sluice process."),
    ts("Resident memory", [(f'max by (instance) (process_resident_memory_bytes{{{SEL}}} and on (instance) sluice_build_info)', "{{instance}}")], "bytes",
       "Resident memory of each sluice process."),
    ts("Open file descriptors", [
        (f'max by (instance) (process_open_fds{{{SEL}}} and on (instance) sluice_build_info)', "open {{instance}}"),
        (f'max by (instance) (process_max_fds{{{SEL}}} and on (instance) sluice_build_info)', "limit {{instance}}"),
    ], "short", "Each TCP/TLS connection holds one; near the limit, new connections fail."),
    ts("Threads", [(f'max by (instance) (process_threads{{{SEL}}} and on (instance) sluice_build_info)', "{{instance}}")], "short"),
]

SRC = 'instance=~"$instance", grammar=~"$grammar", source=~"$source"'

source_panels = [
    {
        "type": "table", "title": "Sources",
        "description": "One row per source (grammar and reporting host): seconds since its last message and last heartbeat, and its message rate. Sorted: the longest silent first.",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": [
            {"refId": "A", "expr": f'time() - max by (grammar, source) (sluice_source_last_seen_timestamp_seconds{{{SRC}}})', "format": "table", "instant": True},
            {"refId": "B", "expr": f'time() - max by (grammar, source) (sluice_source_last_heartbeat_timestamp_seconds{{{SRC}}})', "format": "table", "instant": True},
            {"refId": "C", "expr": f'sum by (grammar, source) (rate(sluice_source_messages_total{{{SRC}}}[5m]))', "format": "table", "instant": True},
        ],
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
                "Value #A": "seconds since last message", "Value #B": "seconds since last heartbeat", "Value #C": "messages / s (5m)"}}},
        ],
        "fieldConfig": {"defaults": {"decimals": 1}, "overrides": []},
        "options": {"sortBy": [{"displayName": "seconds since last message", "desc": True}]},
        "gridPos": {"w": 24, "h": 10},
    },
    ts("Seconds since last message", [(f'time() - max by (grammar, source) (sluice_source_last_seen_timestamp_seconds{{{SRC}}})', "{{grammar}} {{source}}")], "s",
       "A line that climbs steadily is a source gone silent (SluiceSourceSilent fires after 15 minutes)."),
    ts("Heartbeat age (intervals)", [(
        f'(time() - max by (grammar, source) (sluice_source_last_heartbeat_timestamp_seconds{{{SRC}}})) / on (grammar) group_left max by (grammar) (sluice_heartbeat_interval_seconds{{instance=~"$instance"}})',
        "{{grammar}} {{source}}")], "short", "Above 3 intervals, SluiceHeartbeatMissing fires. Only sources that send heartbeats (KATA) appear."),
    ts("Messages / s", [(f'sum by (grammar, source) (rate(sluice_source_messages_total{{{SRC}}}[$__rate_interval]))', "{{grammar}} {{source}}")], "short", stack=True),
    ts("Parse failures / s of the selected grammars", [(
        f'sum by (grammar, code) (rate(sluice_parse_errors_total{{instance=~"$instance", grammar=~"$grammar"}}[$__rate_interval]))', "{{grammar}}: {{code}}")], "short",
       "Parse errors are counted per grammar (a per-host label would be unbounded); the log names the sender of each sample."),
]


def layout(panels):
    """Two panels to a row; a row header, or a panel that does not fit, starts a new line."""
    x = y = 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x = 0
            y += 8 if i else 0
        p["gridPos"].update({"x": x, "y": y})
        if p["type"] == "row":
            y += 1
        else:
            x += w
            if x >= 24:
                x, y = 0, y + h


def variables(extra=()):
    return {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source", "current": {}},
        {"name": "instance", "type": "query", "label": "Instance", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(sluice_build_info, instance)", "refId": "instances"},
         "definition": "label_values(sluice_build_info, instance)", "includeAll": True, "multi": True, "allValue": ".*",
         "current": {"text": "All", "value": "$__all"}, "refresh": 2},
        *extra,
    ]}


def label_variable(name, label, query):
    return {"name": name, "type": "query", "label": label, "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": name}, "definition": query, "includeAll": True, "multi": True,
            "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "refresh": 2}


def write(name, dashboard):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    with open(path, "w") as f:
        json.dump(dashboard, f, indent=2)
        f.write("\n")
    print(path)


layout(panels)
layout(source_panels)
common = {"timezone": "browser", "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"}}
write("sluice-overview.json", {
    "title": "sluice overview",
    "uid": "sluice-overview",
    "description": "Ingest, parsing, back-pressure, Kafka delivery and resources of sluice. See dashboards/README.md.",
    "tags": ["sluice", "syslog", "siem"],
    **common,
    "templating": variables(),
    "links": [{"title": "sluice sources", "type": "link", "url": "/d/sluice-sources"}],
    "panels": panels,
})
write("sluice-sources.json", {
    "title": "sluice sources",
    "uid": "sluice-sources",
    "description": "Per source (grammar and reporting host): last seen, heartbeat age, rate, and the parse failures of its grammar. See dashboards/README.md.",
    "tags": ["sluice", "syslog", "siem"],
    **common,
    "templating": variables([
        label_variable("grammar", "Grammar", 'label_values(sluice_source_messages_total{instance=~"$instance"}, grammar)'),
        label_variable("source", "Source", 'label_values(sluice_source_messages_total{instance=~"$instance", grammar=~"$grammar"}, source)'),
    ]),
    "links": [{"title": "sluice overview", "type": "link", "url": "/d/sluice-overview"}],
    "panels": source_panels,
})
