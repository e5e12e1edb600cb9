"""Sources read from Cloudflare's API: the Workers Logs query and the DLQ (peek / snapshot).

The DLQ's messages become the ``dlq`` frame through ``dlq_body`` (body decoding, envelopes) and
``dlq_frame`` (which also reads saved DLQ files); ``dlq_leases`` handles a snapshot's leases.
"""
